"""`python -m serving.uploader`: the archive's uploader, a process of its own beside the server.

The server only writes each answered upload into the spool (serving/archive.py `Spool`); this process
uploads them (`Uploader`) with the pod's own Vault login (the same VAULT_* variables and role as the
server), so the S3 client's CPU is not spent in the serving interpreter. In a cluster it is the model pod's
native sidecar (argocd/base/model-rollout.yaml: an initContainer with `restartPolicy: Always`, the same
image, the spool volume): Kubernetes stops it after the server, so on SIGTERM the server has taken its last
request, and this process drains the spool for up to `archive_drain_s`, leaving the rest on the volume.
Locally `spira.local_server.start_local_server` starts it beside `bentoml serve`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from serving.archive import (
    LOCAL_SPOOL_ENV,
    SPOOL_DIR,
    STATUS_FILE,
    ArchiveSettings,
    S3Archive,
    Uploader,
    UploaderStatus,
)
from serving.metrics import ArchiveMetrics

log = logging.getLogger("spira.uploader")


class StatusFileMetrics(ArchiveMetrics):
    """The uploader's counts, written to its folder's STATUS_FILE at most every `every_s` (and by `flush`):
    the server's spool accountant adds them to its /metrics, so the series stay on the pod's one port."""

    def __init__(self, path: Path, every_s: float = 0.5) -> None:
        self.path = path
        self.every_s = every_s
        self.status = UploaderStatus(run=uuid.uuid4().hex)
        self._written = float("-inf")

    def archive_state(
        self, pending: int, uploaded: int = 0, failed: int = 0, dropped: int = 0, poisoned: int = 0
    ) -> None:
        self.status.uploaded += uploaded
        self.status.failed += failed
        self.status.poisoned += poisoned
        if time.monotonic() - self._written >= self.every_s:
            self.flush()

    def flush(self) -> None:
        self.status.write(self.path)
        self._written = time.monotonic()


@dataclass
class UploaderProcess:
    uploader: Uploader
    settings: ArchiveSettings
    metrics: StatusFileMetrics


def build_uploader(env: Mapping[str, str]) -> UploaderProcess:
    """The one wiring of the uploader: the serving secret (Vault, as the server logs in), its archive
    settings, the pod's folder of the spool (HOSTNAME, as the server names it)."""
    from spira_core.settings import cached_service_secret

    secret = cached_service_secret(env)
    try:
        settings = ArchiveSettings.from_settings(secret.get())
    except Exception:  # Vault not answering yet: the defaults; the uploads wait for the secret anyway
        settings = ArchiveSettings()
    owner = env.get("HOSTNAME") or socket.gethostname()
    root = Path(env.get(LOCAL_SPOOL_ENV) or SPOOL_DIR)
    metrics = StatusFileMetrics(root / owner / STATUS_FILE)
    uploader = Uploader(S3Archive(secret), root, metrics, owner=owner, orphan_after_s=settings.orphan_after_s)
    return UploaderProcess(uploader, settings, metrics)


def main(environ: Mapping[str, str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    env = os.environ if environ is None else environ
    if not env.get("VAULT_ADDR"):
        log.info("no VAULT_ADDR: the server archives nothing, nothing to upload")
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    process = build_uploader(env)
    uploader, settings = process.uploader, process.settings
    log.info("uploading %s (%d waiting, %d adopted)", uploader.spool, uploader.pending(), uploader.adopted)
    uploader.run(stop)
    started = time.monotonic()
    done = uploader.drain(settings.drain_s)
    process.metrics.flush()
    log.info(
        "drained %d in %.1f s; %d left on the spool%s",
        done,
        time.monotonic() - started,
        uploader.pending(),
        f" (last error: {uploader.last_error})" if uploader.pending() and uploader.last_error else "",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
