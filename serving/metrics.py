"""The service's own metrics, beside BentoML's request metrics on /metrics.

A small interface so the app can be tested with a recording fake; the Prometheus adapter creates its
collectors on first use (BentoML sets PROMETHEUS_MULTIPROC_DIR in the worker after import, and collectors
created before that would never reach /metrics).
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod


class ServingMetrics(ABC):
    @abstractmethod
    def prediction(self, label: str, audio_seconds: float) -> None: ...

    @abstractmethod
    def rejected(self, reason: str) -> None: ...

    @abstractmethod
    def secret_state(self, path: str, version: int | None, stale: bool) -> None: ...

    @abstractmethod
    def archive_state(
        self, pending: int, uploaded: int = 0, failed: int = 0, dropped: int = 0, poisoned: int = 0
    ) -> None: ...


class ModelChoiceMetrics(ABC):
    """Which model implementation serves: a separate port, since only model loading reports it."""

    @abstractmethod
    def model_fallback(self, reason: str) -> None:
        """A faster path was refused (reason: the exception's class, prefixed by the device when it was the
        accelerator) and the next one serves."""


class PrometheusMetrics(ServingMetrics, ModelChoiceMetrics):
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge

        self._predictions = Counter("spira_predictions_total", "Answered predictions by label", ["label"])
        self._rejected = Counter("spira_rejected_uploads_total", "Uploads answered 4xx by reason", ["reason"])
        self._audio = Counter("spira_audio_seconds_total", "Seconds of audio judged")
        self._secret_version = Gauge(
            "spira_secret_version", "KV version of the secret in use", ["path"], multiprocess_mode="livemax"
        )
        self._secret_stale = Gauge(
            "spira_secret_stale",
            "1 while serving a last-good secret through a Vault outage",
            ["path"],
            multiprocess_mode="livemax",
        )
        self._archive_pending = Gauge(
            "spira_archive_pending", "Uploads spooled, not yet archived", multiprocess_mode="livesum"
        )
        self._archive_uploaded = Counter("spira_archive_uploaded_total", "Uploads archived to S3")
        self._archive_failed = Counter("spira_archive_failures_total", "Failed archive attempts (retried)")
        self._archive_dropped = Counter(
            "spira_archive_dropped_total", "Uploads not archived: spool full or unwritable"
        )
        self._archive_poisoned = Counter(
            "spira_archive_poisoned_total",
            "Uploads the object store refused for good, kept in the spool's failed/ folder",
        )
        self._model_fallbacks = Counter(
            "spira_model_fallbacks_total",
            "Model loads that fell back to a slower path (accelerator → CPU fast path → CPU eager), by reason",
            ["reason"],
        )

    def prediction(self, label: str, audio_seconds: float) -> None:
        self._predictions.labels(label=label).inc()
        self._audio.inc(audio_seconds)

    def rejected(self, reason: str) -> None:
        self._rejected.labels(reason=reason).inc()

    def secret_state(self, path: str, version: int | None, stale: bool) -> None:
        if version is not None:
            self._secret_version.labels(path=path).set(version)
        self._secret_stale.labels(path=path).set(1 if stale else 0)

    def model_fallback(self, reason: str) -> None:
        self._model_fallbacks.labels(reason=reason).inc()

    def archive_state(
        self, pending: int, uploaded: int = 0, failed: int = 0, dropped: int = 0, poisoned: int = 0
    ) -> None:
        self._archive_pending.set(pending)
        if uploaded:
            self._archive_uploaded.inc(uploaded)
        if failed:
            self._archive_failed.inc(failed)
        if dropped:
            self._archive_dropped.inc(dropped)
        if poisoned:
            self._archive_poisoned.inc(poisoned)


@functools.cache
def prometheus_metrics() -> PrometheusMetrics:
    """One set of collectors per process (a second registration would be refused by the registry)."""
    return PrometheusMetrics()
