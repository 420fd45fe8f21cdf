"""Archive every upload and its answer to S3, off the request path, without losing any.

The request handler only writes two files into a local spool (milliseconds); a worker thread uploads them
with the credentials of the current secret version and deletes them once stored. S3 down or keys
rotating: the files wait and are retried with backoff; the prediction never waits or fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from pathlib import Path

from serving.metrics import ServingMetrics
from spira_core.vault import CachedSecret

# Where uploads land in the archive bucket: patients' under UPLOADS_PREFIX; requests marked synthetic (the
# promotion gate's load test sends SYNTHETIC_HEADER) under SYNTHETIC_PREFIX, so they never mix with patient
# data and can be expired on their own. Still archived, not dropped: a real upload wrongly marked is kept.
# Serving's S3 user may only PutObject under these two prefixes (infra/environments.yaml,
# `object_store_access`; a unit test holds both in step).
UPLOADS_PREFIX = "uploads/"
SYNTHETIC_PREFIX = "synthetic/"
SYNTHETIC_HEADER = "x-spira-synthetic"


class Archive(ABC):
    @abstractmethod
    def put(self, key: str, body: bytes, content_type: str) -> None: ...


class S3Archive(Archive):
    """Bucket and keys come from the service's Vault secret; a new secret version gets a new client."""

    def __init__(self, secret: CachedSecret) -> None:
        self.secret = secret
        self._client = None
        self._version: int | None = None

    def _client_for_current_secret(self):
        current = self.secret.get_version()
        if self._client is None or current.version != self._version:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=current.data["s3_endpoint"],
                region_name="us-east-1",
                aws_access_key_id=current.data["s3_access_key"],
                aws_secret_access_key=current.data["s3_secret_key"],
                config=Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": 1},
                    connect_timeout=3,
                    read_timeout=10,
                ),
            )
            self._version = current.version
        return self._client, current.data["archive_bucket"]

    def put(self, key: str, body: bytes, content_type: str) -> None:
        client, bucket = self._client_for_current_secret()
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


class SpoolingArchiver:
    def __init__(
        self,
        archive: Archive,
        spool_dir: Path,
        metrics: ServingMetrics,
        max_spool_bytes: int = 512 * 1024 * 1024,
        retry_base_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        self.archive = archive
        self.spool = spool_dir
        self.metrics = metrics
        self.max_spool_bytes = max_spool_bytes
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.spool.mkdir(parents=True, exist_ok=True)
        # Counted in memory, not by listing the spool per request: the worker deletes files while the
        # handler would stat them (a FileNotFoundError there once failed a request during a rotation).
        self._lock = threading.Lock()
        self._pending, self._bytes = _scan(self.spool)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.uploaded = 0
        self.failures = 0
        self.dropped = 0
        self.last_error: str | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spira-archiver", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def pending(self) -> int:
        """Spooled uploads not yet archived."""
        with self._lock:
            return self._pending

    def spool_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def submit(
        self, audio: bytes, answer: dict[str, object], filename: str = "", synthetic: bool = False
    ) -> bool:
        """Spool one upload; False (and counted as dropped) when the spool is full or cannot be written.
        `synthetic` uploads (the gate's) are archived under SYNTHETIC_PREFIX instead of UPLOADS_PREFIX."""
        if self.spool_bytes() + len(audio) > self.max_spool_bytes:
            return self._drop()
        now = datetime.now(UTC)
        item = f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}"
        record = {
            "id": item,
            "received_at": now.isoformat(),
            "filename": filename,
            "answer": answer,
            "synthetic": synthetic,
            "key_prefix": f"{SYNTHETIC_PREFIX if synthetic else UPLOADS_PREFIX}{now:%Y/%m/%d}/{item}",
        }
        meta = json.dumps(record).encode()
        try:
            _atomic_write(self.spool / f"{item}.audio", audio)
            _atomic_write(self.spool / f"{item}.json", meta)  # written last: marks complete
        except OSError as exc:  # disk full or unwritable: the answer still goes out, the loss is counted
            for leftover in self.spool.glob(f"{item}.*"):
                leftover.unlink(missing_ok=True)
            return self._drop(f"spool: {type(exc).__name__}: {exc}")
        with self._lock:
            self._pending += 1
            self._bytes += len(audio) + len(meta)
        self.metrics.archive_state(self.pending())
        self._wake.set()
        return True

    def _drop(self, error: str | None = None) -> bool:
        """Count an upload that is not archived (requests submit from several threads at once)."""
        with self._lock:
            self.dropped += 1
            if error is not None:
                self.last_error = error
        self.metrics.archive_state(self.pending(), dropped=1)
        return False

    def drain_once(self) -> int:
        """Upload what is spooled now; returns how many items were archived. Raises nothing."""
        done = 0
        for meta in sorted(self.spool.glob("*.json")):
            audio = meta.with_suffix(".audio")
            try:
                body, raw = audio.read_bytes(), meta.read_bytes()
                prefix = json.loads(raw)["key_prefix"]
                self.archive.put(f"{prefix}.audio", body, "application/octet-stream")
                self.archive.put(f"{prefix}.json", raw, "application/json")
            except Exception as exc:  # S3, secret or network: keep the files, retry later
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.metrics.archive_state(self.pending(), failed=1)
                return done
            meta.unlink(missing_ok=True)  # first: a crash here leaves an orphan .audio, not a .json whose
            audio.unlink(missing_ok=True)  # audio is gone and that would fail every retry after it
            with self._lock:
                self._pending -= 1
                self._bytes -= len(body) + len(raw)
            done += 1
            self.uploaded += 1
            self.metrics.archive_state(self.pending(), uploaded=1)
        return done

    def _run(self) -> None:
        delay = self.retry_base_s
        while not self._stop.is_set():
            self._wake.wait(timeout=delay if self.pending() else 5.0)
            self._wake.clear()
            if self._stop.is_set():
                break
            failures_before = self.failures
            self.drain_once()
            delay = min(self.retry_max_s, delay * 2) if self.failures > failures_before else self.retry_base_s


def _scan(spool: Path) -> tuple[int, int]:
    """Complete items and bytes left by an earlier process (its half-written .tmp files do not count)."""
    items, size = 0, 0
    for meta in spool.glob("*.json"):
        with contextlib.suppress(FileNotFoundError):
            size += meta.stat().st_size + meta.with_suffix(".audio").stat().st_size
            items += 1
    return items, size


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
