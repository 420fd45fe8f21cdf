"""Archive every upload and its answer to S3, off the request path, without losing any.

The request handler only writes two files into a local spool (milliseconds); a worker thread uploads them
with the credentials of the current secret version and deletes them once stored. S3 down or keys
rotating: the files wait and each is retried with its own backoff (one failing item never holds back the
others); an item the store refuses for good is moved to failed/, counted, never deleted. The spool is a
volume that outlives the pod: drained for a bounded time at shutdown, adopted by a live pod when its
owner is gone (docs/serving.md, "The archive spool").
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from serving.metrics import ServingMetrics
from spira_core.tls import s3_verify
from spira_core.vault import CachedSecret

# Where uploads land in the archive bucket: patients' under UPLOADS_PREFIX; requests marked synthetic (the
# promotion gate's load test sends SYNTHETIC_HEADER) under SYNTHETIC_PREFIX, so they never mix with patient
# data and can be expired on their own. Still archived, not dropped: a real upload wrongly marked is kept.
# Serving's S3 user may only PutObject under these two prefixes (infra/environments.yaml,
# `object_store_access`; a unit test holds both in step).
UPLOADS_PREFIX = "uploads/"
SYNTHETIC_PREFIX = "synthetic/"
SYNTHETIC_HEADER = "x-spira-synthetic"


# Where the pod mounts the spool volume (argocd/base/model-rollout.yaml; `spira manifests check` holds the
# two together). A local server may spool elsewhere (SPIRA_ARCHIVE_SPOOL, set only by local tooling).
SPOOL_DIR = Path("/var/spool/spira-archive")
LOCAL_SPOOL_ENV = "SPIRA_ARCHIVE_SPOOL"
# the keys of the serving secret that tune the archive (as serving.batching.SETTINGS tune batching)
SETTINGS = ("archive_spool_max_bytes", "archive_drain_s", "archive_orphan_after_s")


@dataclass(frozen=True)
class ArchiveSettings:
    """The spool's bound per pod, the drain's time at shutdown, and after how long without a heartbeat a
    pod's folder is adopted. Serving's defaults; an environment overrides them in its serving secret
    (declared in infra/environments.yaml `serving_settings`, written by `spira secrets seed`), read when
    the server starts. The arithmetic behind the defaults is in docs/serving.md ("The archive spool")."""

    max_spool_bytes: int = 64 * 2**30
    drain_s: float = 20.0
    orphan_after_s: float = 120.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> ArchiveSettings:
        """The secret's values where it has them, the defaults elsewhere; a bad value keeps the default."""
        default = cls()

        def positive(key: str, value: float, kind: type) -> float:
            try:
                parsed = kind(settings[key]) if key in settings else value
            except (TypeError, ValueError):
                return value
            return parsed if parsed > 0 else value

        return cls(
            int(positive("archive_spool_max_bytes", default.max_spool_bytes, int)),
            positive("archive_drain_s", default.drain_s, float),
            positive("archive_orphan_after_s", default.orphan_after_s, float),
        )


class PermanentArchiveError(Exception):
    """The object store refused this item for good (a 4xx that is not about keys, throttling or a missing
    bucket): retrying cannot help, so the item is set aside, never retried forever nor deleted."""


class Archive(ABC):
    @abstractmethod
    def put(self, key: str, body: bytes, content_type: str) -> None:
        """Store one object; PermanentArchiveError when no retry can succeed, any other error to retry."""


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
                verify=s3_verify(current.data["s3_endpoint"]),
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
        from botocore.exceptions import ClientError

        client, bucket = self._client_for_current_secret()
        try:
            client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        except ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if 400 <= status < 500 and status not in _RETRIED_4XX:
                raise PermanentArchiveError(f"{status} {exc}") from exc
            raise


# 4xx that a later attempt can get past: keys rotating or revoked (401, 403), a bucket being created or
# misconfigured (404), timeouts, conflicts and throttling.
_RETRIED_4XX = frozenset({401, 403, 404, 408, 409, 429})


class SpoolingArchiver:
    """The spool and its worker. Layout under `spool_dir` (the durable volume's mount):

        <owner>/<item>.audio, <item>.json   waiting; .json written last marks an item complete
        <owner>/failed/<item>.*             refused for good by the object store (or unreadable), kept
        <owner>/.alive                      touched by the worker: a folder whose owner stopped touching
                                            it for `orphan_after_s` is adopted by a live archiver

    With `owner` None the items live in `spool_dir` itself and nothing is adopted (a single process).
    Each item is retried with its own backoff; a pass over the due items stops after `outage_after`
    failures in a row (the store is down, not the item) and the worker waits before the next pass.
    """

    def __init__(
        self,
        archive: Archive,
        spool_dir: Path,
        metrics: ServingMetrics,
        max_spool_bytes: int = 512 * 1024 * 1024,
        retry_base_s: float = 0.5,
        retry_max_s: float = 30.0,
        owner: str | None = None,
        orphan_after_s: float = 120.0,
        outage_after: int = 3,
    ) -> None:
        self.archive = archive
        self.root = spool_dir
        self.spool = spool_dir / owner if owner else spool_dir
        self.owner = owner
        self.metrics = metrics
        self.max_spool_bytes = max_spool_bytes
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.orphan_after_s = orphan_after_s
        self.outage_after = max(1, outage_after)
        self.spool.mkdir(parents=True, exist_ok=True)
        # Counted in memory, not by listing the spool per request: the worker deletes files while the
        # handler would stat them (a FileNotFoundError there once failed a request during a rotation).
        self._lock = threading.Lock()
        self._items: dict[str, _Item] = {}
        self._bytes = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.uploaded = 0
        self.failures = 0
        self.dropped = 0
        self.poisoned = 0
        self.adopted = 0
        self.last_error: str | None = None
        self._in_outage = False
        self._last_beat = float("-inf")
        self._heartbeat()
        for name, size in _scan(self.spool):
            self._add(name, size)
        self.adopt_orphans()  # the startup sweep: items of pods that are gone

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spira-archiver", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def drain(self, deadline_s: float) -> int:
        """At shutdown (after the server stopped taking requests): stop the worker, then upload what is
        spooled, ignoring each item's backoff, until nothing is left, `deadline_s` has passed, or the store
        looks down. What is left stays in the spool for the next process. Returns how many were archived."""
        deadline = time.monotonic() + deadline_s
        self.stop(timeout_s=deadline_s)
        if self._thread is not None and self._thread.is_alive():
            return 0  # the worker is stuck in an upload: never two uploaders on one item
        done = 0
        while self.pending() and time.monotonic() < deadline:
            before = self.failures
            done += self.drain_once(deadline=deadline, ignore_backoff=True)
            if self.failures > before:
                break  # the store refuses now: the rest waits on the durable spool
        return done

    def pending(self) -> int:
        """Spooled uploads not yet archived."""
        with self._lock:
            return len(self._items)

    def spool_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def submit(
        self, audio: bytes, answer: dict[str, object], filename: str = "", synthetic: bool = False
    ) -> bool:
        """Spool one upload; False (and counted as dropped) when the spool is full or cannot be written.
        `synthetic` uploads (the gate's) are archived under SYNTHETIC_PREFIX instead of UPLOADS_PREFIX."""
        if self.spool_bytes() + len(audio) > self.max_spool_bytes:
            return self._drop("spool full")
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
        self._add(item, len(audio) + len(meta))
        self.metrics.archive_state(self.pending())
        self._wake.set()
        return True

    def _add(self, name: str, size: int) -> None:
        with self._lock:
            if name not in self._items:
                self._items[name] = _Item(size)
                self._bytes += size

    def _remove(self, name: str) -> None:
        with self._lock:
            item = self._items.pop(name, None)
            if item is not None:
                self._bytes -= item.size

    def _drop(self, error: str | None = None) -> bool:
        """Count an upload that is not archived (requests submit from several threads at once)."""
        with self._lock:
            self.dropped += 1
            if error is not None:
                self.last_error = error
        self.metrics.archive_state(self.pending(), dropped=1)
        return False

    def drain_once(self, deadline: float | None = None, ignore_backoff: bool = False) -> int:
        """One pass over the items due now, oldest first; returns how many were archived. Raises nothing.
        A failing item backs off alone (the ones after it still go); `outage_after` failures in a row end
        the pass."""
        now = time.monotonic()
        with self._lock:
            due = sorted(n for n, it in self._items.items() if ignore_backoff or it.next_at <= now)
        done = in_a_row = 0
        for name in due:
            if deadline is not None and time.monotonic() >= deadline:
                break
            self._heartbeat()
            try:
                outcome = self._upload(name)
            except OSError as exc:  # the spool itself failing (volume gone, disk error): try again later
                self.last_error = f"spool: {type(exc).__name__}: {exc}"
                outcome = "retry"
            if outcome == "retry":
                in_a_row += 1
                if in_a_row >= self.outage_after:
                    break
                continue
            in_a_row = 0
            done += outcome == "archived"
        return done

    def _upload(self, name: str) -> str:
        meta, audio = self.spool / f"{name}.json", self.spool / f"{name}.audio"
        try:
            body, raw = audio.read_bytes(), meta.read_bytes()
            prefix = json.loads(raw)["key_prefix"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if not meta.exists():  # taken by another pod's sweep (this one looked gone): its job now
                self._remove(name)
                self.metrics.archive_state(self.pending())
                return "gone"  # never uploadable: kept aside, counted
            return self._poison(name, f"unreadable spool item: {type(exc).__name__}: {exc}")
        try:
            self.archive.put(f"{prefix}.audio", body, "application/octet-stream")
            self.archive.put(f"{prefix}.json", raw, "application/json")
        except PermanentArchiveError as exc:
            return self._poison(name, f"refused by the object store: {exc}")
        except Exception as exc:  # S3, secret or network: keep the files, retry this item later
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            with self._lock:
                item = self._items.get(name)
                if item is not None:
                    item.attempts += 1
                    backoff = min(self.retry_max_s, self.retry_base_s * 2 ** (item.attempts - 1))
                    item.next_at = time.monotonic() + backoff
            self.metrics.archive_state(self.pending(), failed=1)
            return "retry"
        meta.unlink(missing_ok=True)  # first: a crash here leaves an orphan .audio, not a .json whose
        audio.unlink(missing_ok=True)  # audio is gone and that would fail every retry after it
        self._remove(name)
        self.uploaded += 1
        self.metrics.archive_state(self.pending(), uploaded=1)
        return "archived"

    def _poison(self, name: str, reason: str) -> str:
        """Move an item that can never be archived to failed/ with the reason: never deleted silently."""
        failed = self.spool / "failed"
        failed.mkdir(parents=True, exist_ok=True)
        for suffix in (".audio", ".json"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.spool / f"{name}{suffix}", failed / f"{name}{suffix}")
        with contextlib.suppress(OSError):
            (failed / f"{name}.error").write_text(reason + "\n")
        self._remove(name)
        self.poisoned += 1
        self.last_error = reason
        self.metrics.archive_state(self.pending(), poisoned=1)
        return "poisoned"

    def _heartbeat(self) -> None:
        """Touch .alive at most every min(10 s, orphan_after_s / 4): also between the items of a long pass,
        so a live pod's folder never looks orphaned."""
        now = time.monotonic()
        if self.owner and now - self._last_beat >= min(10.0, self.orphan_after_s / 4):
            with contextlib.suppress(OSError):
                (self.spool / ".alive").touch()
            self._last_beat = now

    def adopt_orphans(self) -> int:
        """Move into this archiver's folder the items of owners whose heartbeat is older than
        `orphan_after_s` (a pod deleted, evicted or killed): the next live pod uploads them. A rename is
        atomic, so two pods sweeping at once adopt each item once. Returns how many were adopted."""
        if not self.owner:
            return 0
        adopted = 0
        cutoff = time.time() - self.orphan_after_s
        for other in self.root.iterdir():
            if other == self.spool or not other.is_dir() or other.name.startswith("."):
                continue
            try:
                if (other / ".alive").stat().st_mtime > cutoff:
                    continue  # its owner is alive
            except FileNotFoundError:
                pass
            for src, dst in ((other, self.spool), (other / "failed", self.spool / "failed")):
                for meta in sorted(src.glob("*.json")) if src.is_dir() else []:
                    name = meta.stem
                    dst.mkdir(exist_ok=True)
                    try:  # audio first, then the .json that marks the item complete
                        os.replace(src / f"{name}.audio", dst / f"{name}.audio")
                        os.replace(meta, dst / f"{name}.json")
                        if src != other:
                            with contextlib.suppress(FileNotFoundError):
                                os.replace(src / f"{name}.error", dst / f"{name}.error")
                    except FileNotFoundError:
                        continue  # another pod took it first, or a half-adopted item (taken below)
                    if src == other:
                        with contextlib.suppress(OSError):
                            self._add(
                                name,
                                (dst / f"{name}.audio").stat().st_size
                                + (dst / f"{name}.json").stat().st_size,
                            )
                        adopted += 1
            for leftover in (other / ".alive", *other.glob("*.tmp")):
                leftover.unlink(missing_ok=True)  # .tmp: killed mid-write, never answered
            for folder in (other / "failed", other):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when empty
        if adopted:
            self.adopted += adopted
            self.metrics.archive_state(self.pending())
            self._wake.set()
        return adopted

    def _run(self) -> None:
        outage_delay = self.retry_base_s
        last_sweep = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                next_due = min((it.next_at for it in self._items.values()), default=now + 5.0)
            wait = outage_delay if self._in_outage else max(0.0, min(next_due - now, 5.0))
            if self._wake.wait(timeout=wait):
                self._wake.clear()
            if self._stop.is_set():
                break
            self._heartbeat()
            if time.monotonic() - last_sweep >= self.orphan_after_s / 2:
                with contextlib.suppress(OSError):
                    self.adopt_orphans()
                last_sweep = time.monotonic()
            failures_before = self.failures
            done = self.drain_once()
            self._in_outage = self.failures > failures_before and done == 0
            outage_delay = min(self.retry_max_s, outage_delay * 2) if self._in_outage else self.retry_base_s


@dataclass
class _Item:
    size: int
    attempts: int = 0
    next_at: float = 0.0


def _scan(spool: Path) -> list[tuple[str, int]]:
    """Complete items and their bytes left by an earlier process (its half-written .tmp files do not
    count)."""
    found = []
    for meta in spool.glob("*.json"):
        with contextlib.suppress(FileNotFoundError):
            found.append((meta.stem, meta.stat().st_size + meta.with_suffix(".audio").stat().st_size))
    return found


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
