"""Archive every upload and its answer to S3, off the request path and out of the server, losing none.

The server (`Spool`) writes each answered upload once into the spool: one file, the audio (written while
the model runs) then its JSON record, fsynced, renamed complete, the folder fsynced, all before the answer
(a millisecond of CPU); answers ready together share one group commit (one folder fsync). The uploader, a
process of its own (`python -m serving.uploader`: the pod's sidecar, `Uploader` here), finds the items, PUTs
each to the archive bucket with the credentials of the current secret version and deletes it once stored.
S3 down or keys rotating: the files wait and each is retried with its own backoff (one failing item never
holds back the others); an item the store refuses for good is moved to failed/, counted, never deleted. The
spool is a volume that outlives the pod: drained for a bounded time when the uploader is stopped, adopted
by a live pod when its owner is gone (docs/serving.md, "The archive spool").
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from serving.metrics import ArchiveMetrics
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
# the uploader's module: the pod's sidecar runs `python -m serving.uploader` (spira manifests check holds it)
UPLOADER_MODULE = "serving.uploader"
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


# One spool item: `<item>.spool` = the audio, then the JSON record, then the record's length (8 bytes, little
# endian). Written as `<item>.tmp` and renamed: a `.spool` name means complete. The bucket's layout is
# unchanged: the uploader PUTs `<prefix>.audio` and `<prefix>.json`, cut from the file.
ITEM_SUFFIX = ".spool"
# helper threads for a group's fsyncs beside the writer's own (a group larger than that waits its turn)
GROUP_FSYNC_THREADS = 7
TMP_SUFFIX = ".tmp"
_LENGTH = struct.Struct("<Q")
# what the uploader last counted, read by the server's spool accountant for /metrics (UploaderStatus)
STATUS_FILE = ".uploader.json"
HEARTBEAT_FILE = ".alive"


def encode_item(audio: bytes, record: dict[str, object]) -> list[bytes]:
    """The parts of an item file, written with one writev (the audio is never copied)."""
    meta = json.dumps(record).encode()
    return [audio, meta, _LENGTH.pack(len(meta))]


def decode_item(data: bytes) -> tuple[bytes, bytes, dict]:
    """(audio, the record's bytes, the record) of an item file; ValueError when it is not one."""
    if len(data) < _LENGTH.size:
        raise ValueError("shorter than its length field")
    (length,) = _LENGTH.unpack_from(data, len(data) - _LENGTH.size)
    end = len(data) - _LENGTH.size
    if length > end:
        raise ValueError(f"record length {length} beyond the file")
    raw = data[end - length : end]
    record = json.loads(raw)
    if not isinstance(record, dict) or not isinstance(record.get("key_prefix"), str):
        raise ValueError("the record has no key_prefix")
    return data[: end - length], raw, record


def _write_item(folder: Path, item: str, parts: list[bytes]) -> int:
    """Write once, fsync once, rename complete, fsync the folder (the rename's durability). Returns bytes."""
    size = _write_synced(folder, item, parts)
    os.replace(folder / f"{item}{TMP_SUFFIX}", folder / f"{item}{ITEM_SUFFIX}")
    _fsync_dir(folder)
    return size


def _write_synced(folder: Path, item: str, parts: list[bytes]) -> int:
    """`<item>.tmp` written and fsynced (not yet renamed); removed again when that fails. Returns bytes."""
    fd, total = _write_unsynced(folder, item, parts)
    _sync_and_close(fd, folder / f"{item}{TMP_SUFFIX}")
    return total


def _write_unsynced(folder: Path, item: str, parts: list[bytes]) -> tuple[int, int]:
    """`<item>.tmp` created and written with one writev (the audio is not copied), its write-back started,
    not waited for; (its open fd, bytes). Removed again when that fails."""
    tmp = folder / f"{item}{TMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
    try:
        total = _writev_all(fd, parts)
        _start_writeback(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return fd, total


def _writev_all(fd: int, parts: list[bytes]) -> int:
    """One writev of `parts` at the file's offset (the rest written on after a short write); bytes."""
    total = sum(len(p) for p in parts)
    written = os.writev(fd, parts)
    if written < total:  # a short write (rare: signals, NFS): the rest, from where it stopped
        rest = memoryview(b"".join(parts))[written:]
        while rest:
            rest = rest[os.write(fd, rest) :]
    return total


def _sync_and_close(fd: int, tmp: Path) -> None:
    """fsync the file written on `fd` and close it; the file is removed when the fsync fails."""
    try:
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)


def _libc_sync_file_range():
    """Linux's sync_file_range(2), which Python's os module lacks; None elsewhere."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    call.restype = ctypes.c_int
    return call


_SYNC_FILE_RANGE = _libc_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int) -> None:
    """Start writing the file's pages to disk without waiting (a hint: the fsync that follows is what makes
    them durable). A group's files then go out together and its fsyncs share one journal commit instead
    of each starting its own write-back in turn."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def _item_name(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}"


def _record(
    item: str, now: datetime, answer: dict[str, object], filename: str, synthetic: bool
) -> dict[str, object]:
    return {
        "id": item,
        "received_at": now.isoformat(),
        "filename": filename,
        "answer": answer,
        "synthetic": synthetic,
        "key_prefix": f"{SYNTHETIC_PREFIX if synthetic else UPLOADS_PREFIX}{now:%Y/%m/%d}/{item}",
    }


def _append(opened: Future[tuple[int, int]], tmp: Path, parts: list[bytes]) -> tuple[int, int]:
    """A Draft's record written after its audio; (the fd, the item's bytes). Removed again when it fails."""
    fd, size = opened.result()  # the audio's write failing raises its OSError here
    try:
        size += _writev_all(fd, parts)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return fd, size


def _discard(opened: Future[tuple[int, int]], tmp: Path) -> None:
    try:
        fd, _ = opened.result()
    except OSError:
        return  # never written: nothing to remove
    os.close(fd)
    tmp.unlink(missing_ok=True)


# a draft older than this was left by a killed server (no request takes that long): never answered, removed
STALE_DRAFT_S = 600.0


def _remove_stale_drafts(folder: Path, older_than_s: float = STALE_DRAFT_S) -> int:
    """`.tmp` files a killed server left in its folder (drafts of requests it never answered). Returns how
    many were removed."""
    cutoff = time.time() - older_than_s
    removed = 0
    for tmp in folder.glob(f"*{TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed += 1
    return removed


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _scan(folder: Path) -> dict[str, int]:
    """Complete items in a folder and their bytes (half-written .tmp files do not count)."""
    found: dict[str, int] = {}
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(ITEM_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    found[entry.name[: -len(ITEM_SUFFIX)]] = entry.stat().st_size
    return found


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.touch()


@dataclass
class UploaderStatus:
    """What the uploader has done since it started (`run`: one id per process), written to STATUS_FILE in
    its folder; the server reads it each second and adds the differences to its /metrics counters."""

    run: str
    uploaded: int = 0
    failed: int = 0
    poisoned: int = 0

    @classmethod
    def read(cls, path: Path) -> UploaderStatus | None:
        try:
            data = json.loads(path.read_bytes())
            return cls(str(data["run"]), int(data["uploaded"]), int(data["failed"]), int(data["poisoned"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        tmp = path.with_name(path.name + TMP_SUFFIX)
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(self.__dict__))
            os.replace(tmp, path)


@dataclass
class _Queued:
    """An upload waiting for the spool's next group commit."""

    item: str
    parts: list[bytes]  # what is left to write: the whole item, or after a Draft's audio its record
    done: Future[bool]
    opened: Future[tuple[int, int]] | None = None  # a Draft's `<item>.tmp` (fd, bytes) holding the audio


@dataclass(frozen=True)
class Draft:
    """An upload whose audio `Spool.begin` is writing while the model runs: `Spool.finish` appends its
    record (the answer) in the next group commit, `Spool.abandon` removes it (the upload was rejected)."""

    item: str
    received: datetime
    opened: Future[tuple[int, int]] | None  # (fd, bytes) of `<item>.tmp`; None: not written (spool full)


class Spool:
    """The server's side: `submit` writes an answered upload into the pod's folder (<spool>/<owner>/), and
    an accountant thread rescans the folder every `refresh_s` for what is waiting (the bound, /info and
    `spira_archive_pending`) and forwards the uploader's counts to the server's metrics. Never lists the
    spool per request: the uploader deletes files while a handler would stat them."""

    def __init__(
        self,
        spool_dir: Path,
        metrics: ArchiveMetrics,
        max_spool_bytes: int = 512 * 1024 * 1024,
        owner: str | None = None,
        refresh_s: float = 1.0,
    ) -> None:
        self.folder = spool_dir / owner if owner else spool_dir
        self.owner = owner
        self.metrics = metrics
        self.max_spool_bytes = max_spool_bytes
        self.refresh_s = refresh_s
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._pending = 0
        self._bytes = 0
        # what the uploader had counted before this server started is not this server's to report
        self._seen: UploaderStatus | None = UploaderStatus.read(self.folder / STATUS_FILE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.last_error: str | None = None
        # the group commit: uploads queued for the writer thread, and how many groups it committed
        self._commit = threading.Condition()
        self._queued: list[_Queued] = []
        self._writer: threading.Thread | None = None
        self._fsyncers: ThreadPoolExecutor | None = None
        self.groups = 0
        _remove_stale_drafts(self.folder)
        self.refresh()

    def pending(self) -> int:
        """Items waiting in the folder (as of the last rescan, plus those written since)."""
        with self._lock:
            return self._pending

    def spool_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def submit(
        self, audio: bytes, answer: dict[str, object], filename: str = "", synthetic: bool = False
    ) -> bool:
        """Spool one upload and wait until it is durable; False (and counted as dropped) when the spool is
        full or cannot be written. `synthetic` uploads (the gate's) are archived under SYNTHETIC_PREFIX
        instead of UPLOADS_PREFIX."""
        return self.queue(audio, answer, filename, synthetic).result()

    def queue(
        self, audio: bytes, answer: dict[str, object], filename: str = "", synthetic: bool = False
    ) -> Future[bool]:
        """Spool one upload in the next group commit; the future is True once its file is complete and
        durable (never before), False when it was dropped (as `submit`).

        Group commit, as databases do: one writer thread takes every upload queued at once, writes each
        file and starts its write-back, fsyncs each (the journal commits them together), renames them all
        complete and fsyncs the folder ONCE for the group, then completes their futures. Uploads that
        arrive while a group is being synced wait for the next one together, so under load the answers
        share the fsyncs' wait instead of queueing behind each other's; alone, an upload is written at
        once (nothing waits for company)."""
        done: Future[bool] = Future()
        if self.spool_bytes() + len(audio) > self.max_spool_bytes:
            done.set_result(self._drop("spool full"))
            return done
        now = datetime.now(UTC)
        item = _item_name(now)
        self._enqueue(
            _Queued(item, encode_item(audio, _record(item, now, answer, filename, synthetic)), done)
        )
        return done

    def begin(self, audio: bytes, writer: Executor | None = None) -> Draft:
        """Start writing an upload's audio as it arrives, while the model runs (`<item>.tmp` written and
        its write-back started): its answer's group commit then has only the record left to write, and
        less to wait for. `writer` runs that write (default: the spool's helper threads); the server
        passes its compute executor, so the write goes just before the upload's decode on the same
        thread instead of beside it (less CPU: docs/performance.md). Each Draft ends with `finish` or
        `abandon`."""
        now = datetime.now(UTC)
        item = _item_name(now)
        if self.spool_bytes() + len(audio) > self.max_spool_bytes:
            return Draft(item, now, None)
        return Draft(item, now, (writer or self._helpers()).submit(self._write_audio, item, audio))

    def finish(
        self, draft: Draft, answer: dict[str, object], filename: str = "", synthetic: bool = False
    ) -> Future[bool]:
        """The Draft's record appended in the next group commit; the future as `queue`'s."""
        done: Future[bool] = Future()
        if draft.opened is None:
            done.set_result(self._drop("spool full"))
            return done
        record = _record(draft.item, draft.received, answer, filename, synthetic)
        self._enqueue(_Queued(draft.item, encode_item(b"", record)[1:], done, draft.opened))
        return done

    def abandon(self, draft: Draft) -> None:
        """The upload was rejected: its `<item>.tmp` removed (by a helper thread, once written)."""
        if draft.opened is not None:
            self._helpers().submit(_discard, draft.opened, self.folder / f"{draft.item}{TMP_SUFFIX}")

    def _write_audio(self, item: str, audio: bytes) -> tuple[int, int]:
        try:
            return _write_unsynced(self.folder, item, [audio])
        except FileNotFoundError:  # the folder was swept away (adopted while this pod looked gone)
            self.folder.mkdir(parents=True, exist_ok=True)
            return _write_unsynced(self.folder, item, [audio])

    def _enqueue(self, queued: _Queued) -> None:
        with self._commit:
            self._queued.append(queued)
            if self._writer is None or not self._writer.is_alive():  # on first use: after any fork
                self._writer = threading.Thread(
                    target=self._write_groups, name="spira-spool-writer", daemon=True
                )
                self._writer.start()
            self._commit.notify()

    def _write_groups(self) -> None:
        """The writer thread: one group commit after the other, each taking all that is queued."""
        while True:
            with self._commit:
                while not self._queued:
                    self._commit.wait()
                group, self._queued = self._queued, []
            try:
                self._write_group(group)
            except BaseException as exc:  # a bug, not the disk: every waiting request learns why
                for queued in group:
                    if not queued.done.done():
                        queued.done.set_exception(exc)

    def _helpers(self) -> ThreadPoolExecutor:
        if self._fsyncers is None:
            self._fsyncers = ThreadPoolExecutor(GROUP_FSYNC_THREADS, thread_name_prefix="spira-spool-fsync")
        return self._fsyncers

    def _write_group(self, group: list[_Queued]) -> None:
        written: list[tuple[_Queued, int, int]] = []  # (upload, its open fd, bytes)
        for queued in group:  # every file written and its write-back started first
            try:
                if queued.opened is not None:  # a Draft: its audio is written, its record goes after it
                    fd, size = _append(
                        queued.opened, self.folder / f"{queued.item}{TMP_SUFFIX}", queued.parts
                    )
                else:
                    try:
                        fd, size = _write_unsynced(self.folder, queued.item, queued.parts)
                    except (
                        FileNotFoundError
                    ):  # the folder was swept away (adopted while this pod looked gone)
                        self.folder.mkdir(parents=True, exist_ok=True)
                        fd, size = _write_unsynced(self.folder, queued.item, queued.parts)
            except OSError as exc:  # disk full or unwritable: the answer still goes out, the loss is counted
                queued.done.set_result(self._drop(f"spool: {type(exc).__name__}: {exc}"))
                continue
            written.append((queued, fd, size))
        # then the files' fsyncs side by side (the writer does the first, helpers the others): the disk
        # journal commits concurrent fsyncs together, where one after the other each would wait its own
        syncing = [
            self._helpers().submit(_sync_and_close, fd, self.folder / f"{queued.item}{TMP_SUFFIX}")
            for queued, fd, _ in written[1:]
        ]
        renamed: list[tuple[_Queued, int]] = []
        for k, (queued, fd, size) in enumerate(written):  # each one's data durable, then its complete name
            tmp = self.folder / f"{queued.item}{TMP_SUFFIX}"
            try:
                if k == 0:
                    _sync_and_close(fd, tmp)
                else:
                    syncing[k - 1].result()
                os.replace(tmp, self.folder / f"{queued.item}{ITEM_SUFFIX}")
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                queued.done.set_result(self._drop(f"spool: {type(exc).__name__}: {exc}"))
                continue
            renamed.append((queued, size))
        if not renamed:
            return
        try:
            _fsync_dir(self.folder)  # the renames' durability: once for the whole group
        except OSError as exc:
            for queued, _ in renamed:
                queued.done.set_result(self._drop(f"spool: {type(exc).__name__}: {exc}"))
            return
        with self._lock:
            self._pending += len(renamed)
            self._bytes += sum(size for _, size in renamed)
            self.groups += 1
        for queued, _ in renamed:
            queued.done.set_result(True)

    def _drop(self, error: str) -> bool:
        with self._lock:
            self.dropped += 1
            self.last_error = error
        self.metrics.archive_state(self.pending(), dropped=1)
        return False

    def refresh(self) -> None:
        """Rescan the folder, touch its heartbeat (this pod is alive: its folder is not to be adopted), and
        forward what the uploader counted since the last look."""
        found = _scan(self.folder)
        with self._lock:
            self._pending, self._bytes = len(found), sum(found.values())
        if self.owner:
            _touch(self.folder / HEARTBEAT_FILE)
        status = UploaderStatus.read(self.folder / STATUS_FILE)
        seen = self._seen
        delta = {"uploaded": 0, "failed": 0, "poisoned": 0}
        if status is not None:
            for key in delta:  # a new uploader process counts from 0 again
                before = getattr(seen, key) if seen is not None and seen.run == status.run else 0
                delta[key] = max(0, getattr(status, key) - before)
            self._seen = status
        self.metrics.archive_state(len(found), **delta)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spira-spool-accountant", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        wait = self.refresh_s
        while not self._stop.wait(wait):
            started = time.thread_time()
            with contextlib.suppress(OSError):
                self.refresh()
            # a long backlog (an S3 outage) makes a rescan cost more: never more than 5% of a core on it
            wait = max(self.refresh_s, 20 * (time.thread_time() - started))


class Uploader:
    """The uploader's side, in its own process: the items of the pod's folder to the object store. Layout
    under `spool_dir` (the durable volume's mount):

        <owner>/<item>.spool          waiting (the server renames it complete)
        <owner>/failed/<item>.spool   refused for good by the object store (or unreadable), with .error
        <owner>/.alive                touched by the server and the uploader: a folder nobody touched for
                                      `orphan_after_s` is adopted by a live uploader
        <owner>/.uploader.json        the uploader's counts (UploaderStatus), for the server's /metrics

    With `owner` None the items live in `spool_dir` itself and nothing is adopted (a single process).
    Each item is retried with its own backoff; a pass over the due items stops after `outage_after`
    failures in a row (the store is down, not the item) and the loop waits before the next pass.
    """

    def __init__(
        self,
        archive: Archive,
        spool_dir: Path,
        metrics: ArchiveMetrics,
        retry_base_s: float = 0.5,
        retry_max_s: float = 30.0,
        owner: str | None = None,
        orphan_after_s: float = 120.0,
        outage_after: int = 3,
        poll_s: float = 0.25,
    ) -> None:
        self.archive = archive
        self.root = spool_dir
        self.spool = spool_dir / owner if owner else spool_dir
        self.owner = owner
        self.metrics = metrics
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.orphan_after_s = orphan_after_s
        self.outage_after = max(1, outage_after)
        self.poll_s = poll_s
        self.spool.mkdir(parents=True, exist_ok=True)
        self._items: dict[str, _Item] = {}
        self.uploaded = 0
        self.failures = 0
        self.poisoned = 0
        self.adopted = 0
        self.last_error: str | None = None
        self._last_beat = float("-inf")
        self._heartbeat()
        _migrate_pairs(self.spool)
        self.scan()
        self.adopt_orphans()  # the startup sweep: items of pods that are gone

    def scan(self) -> int:
        """Pick up the items the server wrote since the last look (and forget those gone). Returns pending."""
        found = _scan(self.spool)
        for name in self._items.keys() - found.keys():
            del self._items[name]
        for name, size in found.items():
            self._items.setdefault(name, _Item(size))
        return len(self._items)

    def pending(self) -> int:
        return len(self._items)

    def run(self, stop: threading.Event) -> None:
        """Upload until `stop` is set: a pass over the due items every `poll_s`, waiting longer (doubling to
        `retry_max_s`) while the store is down; adopt orphaned folders every `orphan_after_s / 2`."""
        outage_delay = self.retry_base_s
        last_sweep = time.monotonic()
        while not stop.is_set():
            self._heartbeat()
            if time.monotonic() - last_sweep >= self.orphan_after_s / 2:
                with contextlib.suppress(OSError):
                    self.adopt_orphans()
                last_sweep = time.monotonic()
            failures_before = self.failures
            done = self.drain_once()
            in_outage = self.failures > failures_before and done == 0
            outage_delay = min(self.retry_max_s, outage_delay * 2) if in_outage else self.retry_base_s
            stop.wait(outage_delay if in_outage else self.poll_s)

    def drain(self, deadline_s: float) -> int:
        """At shutdown (SIGTERM, after the server stopped taking requests): upload what is spooled,
        ignoring each item's backoff, until nothing is left, `deadline_s` has passed, or the store looks
        down. What is left stays in the spool for the next uploader. Returns how many were archived."""
        deadline = time.monotonic() + deadline_s
        done = 0
        while self.scan() and time.monotonic() < deadline:
            before = self.failures
            done += self.drain_once(deadline=deadline, ignore_backoff=True)
            if self.failures > before:
                break  # the store refuses now: the rest waits on the durable spool
        return done

    def drain_once(self, deadline: float | None = None, ignore_backoff: bool = False) -> int:
        """One pass over the items due now, oldest first; returns how many were archived. Raises nothing.
        A failing item backs off alone (the ones after it still go); `outage_after` failures in a row end
        the pass."""
        with contextlib.suppress(OSError):
            self.scan()
        now = time.monotonic()
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
        self.metrics.archive_state(self.pending())
        return done

    def _upload(self, name: str) -> str:
        path = self.spool / f"{name}{ITEM_SUFFIX}"
        try:
            audio, raw, record = decode_item(path.read_bytes())
        except FileNotFoundError:  # taken by another pod's sweep (this one looked gone): its job now
            self._items.pop(name, None)
            return "gone"
        except (OSError, ValueError) as exc:  # never uploadable: kept aside, counted
            return self._poison(name, f"unreadable spool item: {type(exc).__name__}: {exc}")
        prefix = record["key_prefix"]
        try:
            self.archive.put(f"{prefix}.audio", audio, "application/octet-stream")
            self.archive.put(f"{prefix}.json", raw, "application/json")
        except PermanentArchiveError as exc:
            return self._poison(name, f"refused by the object store: {exc}")
        except Exception as exc:  # S3, secret or network: keep the file, retry this item later
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            item = self._items.get(name)
            if item is not None:
                item.attempts += 1
                item.next_at = time.monotonic() + min(
                    self.retry_max_s, self.retry_base_s * 2 ** (item.attempts - 1)
                )
            self.metrics.archive_state(self.pending(), failed=1)
            return "retry"
        path.unlink(missing_ok=True)  # confirmed stored: only now is the spool's copy deleted
        self._items.pop(name, None)
        self.uploaded += 1
        self.metrics.archive_state(self.pending(), uploaded=1)
        return "archived"

    def _poison(self, name: str, reason: str) -> str:
        """Move an item that can never be archived to failed/ with the reason: never deleted silently."""
        failed = self.spool / "failed"
        failed.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.spool / f"{name}{ITEM_SUFFIX}", failed / f"{name}{ITEM_SUFFIX}")
        with contextlib.suppress(OSError):
            (failed / f"{name}.error").write_text(reason + "\n")
        self._items.pop(name, None)
        self.poisoned += 1
        self.last_error = reason
        self.metrics.archive_state(self.pending(), poisoned=1)
        return "poisoned"

    def _heartbeat(self) -> None:
        """Touch .alive at most every min(10 s, orphan_after_s / 4): also between the items of a long pass,
        so a live pod's folder never looks orphaned."""
        now = time.monotonic()
        if self.owner and now - self._last_beat >= min(10.0, self.orphan_after_s / 4):
            _touch(self.spool / HEARTBEAT_FILE)
            self._last_beat = now

    def adopt_orphans(self) -> int:
        """Move into this uploader's folder the items of owners whose heartbeat is older than
        `orphan_after_s` (a pod deleted, evicted or killed): this pod uploads them. A rename is atomic, so
        two pods sweeping at once adopt each item once. Returns how many were adopted."""
        if not self.owner:
            return 0
        adopted = 0
        cutoff = time.time() - self.orphan_after_s
        for other in self.root.iterdir():
            if other == self.spool or not other.is_dir() or other.name.startswith("."):
                continue
            try:
                if (other / HEARTBEAT_FILE).stat().st_mtime > cutoff:
                    continue  # its owner is alive
            except FileNotFoundError:
                pass
            for src, dst in ((other, self.spool), (other / "failed", self.spool / "failed")):
                if not src.is_dir():
                    continue
                _migrate_pairs(src)  # a pod of the release before this one left .audio + .json pairs
                for item in sorted(src.glob(f"*{ITEM_SUFFIX}")):
                    dst.mkdir(exist_ok=True)
                    try:
                        os.replace(item, dst / item.name)
                    except FileNotFoundError:
                        continue  # another pod took it first
                    if src != other:
                        with contextlib.suppress(FileNotFoundError):
                            os.replace(src / f"{item.stem}.error", dst / f"{item.stem}.error")
                    else:
                        adopted += 1
            for leftover in (other / HEARTBEAT_FILE, other / STATUS_FILE, *other.glob(f"*{TMP_SUFFIX}")):
                leftover.unlink(missing_ok=True)  # .tmp: killed mid-write, never answered
            for folder in (other / "failed", other):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when empty
        if adopted:
            self.adopted += adopted
            self.scan()
        return adopted


@dataclass
class _Item:
    size: int
    attempts: int = 0
    next_at: float = 0.0


def _migrate_pairs(folder: Path) -> int:
    """Items of the previous layout (`<item>.audio`, then `<item>.json` written last) rewritten as one
    `.spool` file each, durably, before the pair is removed. Returns how many."""
    moved = 0
    for meta in sorted(folder.glob("*.json")):
        if meta.name.startswith("."):
            continue
        audio = meta.with_suffix(".audio")
        try:
            record = json.loads(meta.read_bytes())
            body = audio.read_bytes()
        except (OSError, ValueError):
            continue  # half-adopted or broken: left as it is, for an operator
        if not isinstance(record, dict):
            continue
        _write_item(folder, meta.stem, encode_item(body, record))
        meta.unlink(missing_ok=True)
        audio.unlink(missing_ok=True)
        moved += 1
    return moved
