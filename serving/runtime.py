"""What a running server holds, and the request flow over it (framework-free, so it is unit-testable)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field

from serving.archive import Spool
from serving.inference import Predictor
from serving.metrics import ServingMetrics
from serving.monitoring import InputMonitor
from spira_core.admission import BodyBudget
from spira_core.vault import CachedSecret, SecretStatus, SecretUnavailable


@dataclass
class ServingRuntime:
    predictor: Predictor
    metrics: ServingMetrics
    secret: CachedSecret | None = None
    secret_path: str = ""
    # the archive spool this server writes (the uploader process uploads from it; serving/archive.py)
    spool: Spool | None = None
    # per-site input quality and drift (None: not monitored, as in unit tests of other concerns)
    monitor: InputMonitor | None = None
    # request bodies in flight, bounded by the predictor's UploadLimits (one budget per process)
    bodies: BodyBudget = field(init=False)

    def __post_init__(self) -> None:
        limits = self.predictor.limits
        self.bodies = BodyBudget(limits.max_inflight_bytes, limits.busy_wait_s, limits.retry_after_s)

    @property
    def max_upload_bytes(self) -> int:
        return self.predictor.max_upload_bytes

    async def predict(
        self, data: bytes, filename: str = "", synthetic: bool = False, site: str | None = None
    ) -> dict[str, object]:
        # the audio's archive copy written while the model runs (the answer's record follows it), by the
        # compute thread just before it decodes the same bytes
        draft = self.spool.begin(data, self.predictor.compute) if self.spool is not None else None
        try:
            # A Rejected upload propagates to the HTTP layer, which answers 4xx and counts it.
            answer, observation = await self.predictor.predict_observed(data)
        except BaseException:
            if draft is not None:
                self.spool.abandon(draft)
            raise
        self.metrics.prediction(str(answer["label"]), float(answer["duration_s"]))
        # the gate's synthetic load is no site's input: only patients' uploads are monitored
        if self.monitor is not None and observation is not None and not synthetic:
            self.monitor.observe(site, observation)
        if draft is not None:  # durable before the answer: the spool's next group commit, off the loop
            await asyncio.wrap_future(self.spool.finish(draft, answer, filename, synthetic))
        # the secret's gauges are the refresher's (start_secret_refresher) and /readyz's: a request reads
        # only the secret's cache, which changes only when the refresher reads Vault
        return answer

    def shutdown(self) -> None:
        """After the server stopped taking requests: every answered upload is on the spool already; the
        uploader process drains it (serving/uploader.py), so only the spool's accountant stops here."""
        if self.spool is not None:
            self.spool.stop()

    def report_secret(self) -> SecretStatus | None:
        """Publish the version in use (rotation waits on this gauge) and whether it is a stale fallback,
        from the cache only; returns that status (None without a secret)."""
        if self.secret is None:
            return None
        status = self.secret.status()
        self.metrics.secret_state(self.secret_path, status.version, status.stale)
        return status

    def start_secret_refresher(self, interval_s: float) -> threading.Thread:
        """Re-read the secret every interval even without traffic, so a rotation is picked up (and shown
        on /metrics) within the TTL, and an outage shows on /readyz before a request needs the secret."""

        def loop() -> None:
            while True:
                time.sleep(interval_s)
                self.refresh_secret()

        thread = threading.Thread(target=loop, name="spira-secret-refresh", daemon=True)
        thread.start()
        return thread

    def refresh_secret(self) -> None:
        """Read Vault if the cache is due (the network call): from the refresher thread and at start-up,
        never on the event loop."""
        if self.secret is not None:
            with contextlib.suppress(SecretUnavailable):
                self.secret.get_version()
        self.report_secret()

    def secret_readable(self) -> bool:
        """From the cache only: /readyz and /info never wait on Vault, even one that hangs."""
        status = self.report_secret()
        return status is None or status.usable

    def info(self) -> dict[str, object]:
        """GET /info: what serves, and the readiness detail (from the cache only)."""
        return {**self.predictor.describe(), "readiness": self.readiness()}

    def readiness(self) -> dict[str, object]:
        secret = self.secret.status() if self.secret is not None else None
        readable = secret is None or secret.usable
        return {
            "ready": readable,
            "model_version": self.predictor.model_version,
            "secret": None
            if secret is None
            else {
                "version": secret.version,
                "stale": secret.stale,
                "usable": readable,
                "last_error": secret.last_error,
            },
            "archive_pending": self.spool.pending() if self.spool else 0,
        }
