"""Per-site input monitoring: each upload's quality and a drift score per site, exported as metrics.

    monitor = InputMonitor(bundle.drift_reference, metrics, MonitoringSettings.from_settings(secret))
    monitor.observe(site, observe_input(samples, rate, mfcc_frames, bundle.drift_reference))

The measures themselves are pure (spira_core.monitoring); this keeps one sliding window of uploads per
site and hands the results to a small metrics port, so anything that judges uploads (the HTTP server, a
queue worker) reports the same series. The sites are declared once per environment (the serving secret's
`monitored_sites`, from infra/environments.yaml `serving_settings`); any other site is `other`, none
`unspecified`, so the label set stays bounded whatever clients send.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from spira_core.monitoring import (
    OTHER_SITE,
    UNSPECIFIED_SITE,
    DriftReference,
    DriftWindow,
    InputObservation,
    InputQuality,
    parse_sites,
    site_label,
)

log = logging.getLogger(__name__)

# the keys of the serving secret that configure monitoring (as serving.batching.SETTINGS tune batching)
SETTINGS = ("monitored_sites", "drift_window_uploads")


@dataclass(frozen=True)
class MonitoringSettings:
    """The declared sites and how many recent uploads per site the drift score covers. Read at start from
    the serving secret; without one (a local run), no declared site: every named site is `other`."""

    sites: tuple[str, ...] = ()
    window_uploads: int = 50

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> MonitoringSettings:
        default = cls()
        try:
            window = int(settings.get("drift_window_uploads", default.window_uploads))
        except (TypeError, ValueError):
            window = default.window_uploads
        return cls(
            parse_sites(settings.get("monitored_sites")), window if window > 0 else default.window_uploads
        )

    @property
    def labels(self) -> tuple[str, ...]:
        """Every site label this server may export."""
        return (*self.sites, OTHER_SITE, UNSPECIFIED_SITE)


class InputMetrics(ABC):
    """Where the measures go (Prometheus in the server; a recording fake in tests)."""

    @abstractmethod
    def input_quality(self, site: str, quality: InputQuality) -> None: ...

    @abstractmethod
    def input_drift(self, site: str, score: float, uploads: int) -> None: ...


class InputMonitor:
    def __init__(
        self,
        reference: DriftReference | None,
        metrics: InputMetrics,
        settings: MonitoringSettings | None = None,
    ) -> None:
        self.reference = reference
        self.metrics = metrics
        self.settings = settings or MonitoringSettings()
        self._windows: dict[str, DriftWindow] = {}
        self._lock = threading.Lock()  # a queue worker may observe from several threads
        if reference is None:
            log.warning(
                "the model bundle has no drift reference (trained before input monitoring): "
                "input quality is exported per site, spira_input_drift_score is not"
            )

    def label(self, site: str | None) -> str:
        return site_label(site, self.settings.sites)

    def observe(self, site: str | None, observation: InputObservation) -> str:
        """Export one upload's measures under its site's label (returned)."""
        label = self.label(site)
        self.metrics.input_quality(label, observation.quality)
        if self.reference is None or observation.counts is None:
            return label
        with self._lock:
            window = self._windows.get(label)
            if window is None:
                window = self._windows[label] = DriftWindow(self.reference, self.settings.window_uploads)
            score = window.add(observation.counts)
            uploads = len(window)
        self.metrics.input_drift(label, score, uploads)
        return label
