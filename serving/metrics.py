"""The service's own metrics, beside BentoML's request metrics on /metrics.

A small interface so the app can be tested with a recording fake; the Prometheus adapter creates its
collectors on first use (BentoML sets PROMETHEUS_MULTIPROC_DIR in the worker after import, and collectors
created before that would never reach /metrics).
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod

from serving.monitoring import InputMetrics
from spira_core.monitoring import InputQuality

# Histogram buckets of the input measures (per site)
DURATION_BUCKETS_S = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60)
SAMPLE_RATE_BUCKETS_HZ = (8_000, 11_025, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 96_000, 192_000)
CLIPPING_BUCKETS = (0.0, 0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
SILENCE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
SNR_BUCKETS_DB = (0, 5, 10, 15, 20, 25, 30, 40, 50, 60)


class ArchiveMetrics(ABC):
    """The archive's counts: the server's spool (pending, dropped) and the uploader's (serving/archive.py)."""

    @abstractmethod
    def archive_state(
        self, pending: int, uploaded: int = 0, failed: int = 0, dropped: int = 0, poisoned: int = 0
    ) -> None: ...


class ServingMetrics(ArchiveMetrics):
    @abstractmethod
    def prediction(self, label: str, audio_seconds: float) -> None: ...

    @abstractmethod
    def rejected(self, reason: str) -> None: ...

    @abstractmethod
    def secret_state(self, path: str, version: int | None, stale: bool) -> None: ...


class ModelChoiceMetrics(ABC):
    """Which model implementation serves: a separate port, since only model loading reports it."""

    @abstractmethod
    def model_fallback(self, reason: str) -> None:
        """A faster path was refused (reason: the exception's class, prefixed by the device when it was the
        accelerator) and the next one serves."""


class PrometheusMetrics(ServingMetrics, ModelChoiceMetrics, InputMetrics):
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

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

        site = ["site"]
        self._input_duration = Histogram(
            "spira_input_duration_seconds", "Duration of judged uploads", site, buckets=DURATION_BUCKETS_S
        )
        self._input_rate = Histogram(
            "spira_input_sample_rate_hz",
            "Sample rate of judged uploads",
            site,
            buckets=SAMPLE_RATE_BUCKETS_HZ,
        )
        self._input_clipping = Histogram(
            "spira_input_clipping_ratio",
            "Share of an upload's samples in flat tops at its peak (clipping)",
            site,
            buckets=CLIPPING_BUCKETS,
        )
        self._input_silence = Histogram(
            "spira_input_silence_ratio",
            "Share of an upload's 20 ms frames that are silence",
            site,
            buckets=SILENCE_BUCKETS,
        )
        self._input_snr = Histogram(
            "spira_input_snr_db",
            "Estimated SNR of an upload (loud frames over the noise floor)",
            site,
            buckets=SNR_BUCKETS_DB,
        )
        self._input_drift = Gauge(
            "spira_input_drift_score",
            "Mean PSI of the MFCC coefficients of the site's recent uploads against training's (0 = alike)",
            site,
            multiprocess_mode="livemostrecent",
        )
        self._input_drift_uploads = Gauge(
            "spira_input_drift_window_uploads",
            "Uploads the site's drift score covers (its sliding window)",
            site,
            multiprocess_mode="livemostrecent",
        )

    def input_quality(self, site: str, quality: InputQuality) -> None:
        self._input_duration.labels(site=site).observe(quality.duration_s)
        self._input_rate.labels(site=site).observe(quality.sample_rate)
        self._input_clipping.labels(site=site).observe(quality.clipping_ratio)
        self._input_silence.labels(site=site).observe(quality.silence_ratio)
        self._input_snr.labels(site=site).observe(quality.snr_db)

    def input_drift(self, site: str, score: float, uploads: int) -> None:
        self._input_drift.labels(site=site).set(score)
        self._input_drift_uploads.labels(site=site).set(uploads)

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
