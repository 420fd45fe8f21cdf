"""The spool's group commit: uploads that arrive while a group is being synced are written together and
share ONE folder fsync, no upload is answered before its own file is durable, and the audio is written
while the model runs (a rejected upload's draft removed). The disk's syncs are
observed through os.fsync and os.replace wrappers (never timing): a gate holds the writer inside an fsync
while more uploads queue up."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from serving.archive import Spool, decode_item
from serving.batching import Batching
from serving.inference import Predictor
from serving.runtime import ServingRuntime
from spira_core.params import FeatureParams
from spira_core.uploads import Rejected
from tests.fakes.serving import FakeWindowModel, RecordingMetrics, fake_predictor, wav_bytes


class SyncLog:
    """Every fsync (a folder's as "dir", a file's by its path) and every rename, in order; the first fsync
    of a file waits at a gate until the test opens it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self._fsync, self._replace = os.fsync, os.replace
        monkeypatch.setattr(os, "fsync", self.fsync)
        monkeypatch.setattr(os, "replace", self.replace)

    def fsync(self, fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            self._fsync(fd)
            self.events.append(("fsync", "dir"))
            return
        name = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        self.entered.set()
        assert self.gate.wait(10), "the test never opened the gate"
        self._fsync(fd)
        self.events.append(("fsync", name))

    def replace(self, src, dst) -> None:
        self._replace(src, dst)
        self.events.append(("rename", Path(src).name))

    def fsyncs(self, of: str) -> int:
        """How many fsyncs of folders ("dir") or of files ("file")."""
        return sum(1 for op, name in self.events if op == "fsync" and (name == "dir") == (of == "dir"))


def _queue_while_the_writer_is_held(spool: Spool, log: SyncLog, n: int) -> list[Future[bool]]:
    """The first upload alone (the writer takes it and stops in its fsync), then n - 1 more queued behind
    it; each future notes, when it completes, how much of the log had happened by then."""
    futures = [spool.queue(b"a" * 5_000, {"i": 0})]
    assert log.entered.wait(10)
    futures += [spool.queue(b"b" * 5_000 + bytes([i]), {"i": i}) for i in range(1, n)]
    for future in futures:
        future.add_done_callback(lambda f: setattr(f, "seen", len(log.events)))
    log.gate.set()
    for future in futures:
        assert future.result(10) is True
    return futures


def test_uploads_queued_while_a_group_syncs_are_committed_together_with_one_folder_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SyncLog(monkeypatch)
    spool = Spool(tmp_path / "spool", RecordingMetrics())
    _queue_while_the_writer_is_held(spool, log, 8)
    items = sorted((tmp_path / "spool").glob("*.spool"))
    assert len(items) == 8 and not list((tmp_path / "spool").glob("*.tmp"))
    assert sorted(decode_item(p.read_bytes())[2]["answer"]["i"] for p in items) == list(range(8))
    assert log.fsyncs("file") == 8  # each file's data synced once
    assert log.fsyncs("dir") == 2  # the first upload's group, then ONE for the seven queued behind it
    assert spool.groups == 2 and spool.pending() == 8


def test_no_upload_is_answered_before_its_file_and_its_complete_name_are_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SyncLog(monkeypatch)
    spool = Spool(tmp_path / "spool", RecordingMetrics())
    futures = _queue_while_the_writer_is_held(spool, log, 5)
    by_answer = {
        decode_item(p.read_bytes())[2]["answer"]["i"]: p.stem for p in (tmp_path / "spool").glob("*.spool")
    }
    for i, future in enumerate(futures):
        before_answer = log.events[: future.seen]
        item = by_answer[i]
        synced = before_answer.index(("fsync", f"{item}.tmp"))
        renamed = before_answer.index(("rename", f"{item}.tmp"))
        assert synced < renamed < max(k for k, e in enumerate(before_answer) if e == ("fsync", "dir"))


def test_one_upload_failing_to_write_drops_only_that_one_of_its_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SyncLog(monkeypatch)
    writev = os.writev

    def disk_full_for_one(fd: int, parts: list[bytes]) -> int:
        if parts[0].startswith(b"FULL"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return writev(fd, parts)

    monkeypatch.setattr(os, "writev", disk_full_for_one)
    metrics = RecordingMetrics()
    spool = Spool(tmp_path / "spool", metrics)
    first = spool.queue(b"a" * 100, {"i": 0})
    assert log.entered.wait(10)
    group = [spool.queue(b"FULL" * 100 if i == 2 else b"c" * 100, {"i": i}) for i in range(1, 4)]
    log.gate.set()
    assert first.result(10) is True
    assert [f.result(10) for f in group] == [True, False, True]
    assert metrics.archive["dropped"] == 1 and "No space left" in (spool.last_error or "")
    assert len(list((tmp_path / "spool").glob("*.spool"))) == 3
    assert not list((tmp_path / "spool").glob("*.tmp"))  # the failed one left nothing behind


def test_the_server_answers_only_once_the_upload_is_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SyncLog(monkeypatch)
    metrics = RecordingMetrics()
    spool = Spool(tmp_path / "spool", metrics)
    runtime = ServingRuntime(fake_predictor(0.7, batching=Batching(64, 5.0)), metrics, spool=spool)

    async def predict_while_the_disk_is_held() -> dict[str, object]:
        answering = asyncio.create_task(runtime.predict(wav_bytes(4.2), "p.wav"))
        assert await asyncio.to_thread(log.entered.wait, 10)  # the writer is inside the file's fsync
        for _ in range(20):
            await asyncio.sleep(0.005)
            assert not answering.done()  # the answer waits for its upload's durability
        assert not list((tmp_path / "spool").glob("*.spool"))
        log.gate.set()
        return await answering

    answer = asyncio.run(predict_while_the_disk_is_held())
    assert answer["probability"] == pytest.approx(0.7)
    (item,) = (tmp_path / "spool").glob("*.spool")
    assert log.events[-1] == ("fsync", "dir") and ("rename", f"{item.stem}.tmp") in log.events


def test_the_audio_is_written_to_the_spool_while_the_model_runs(tmp_path: Path) -> None:
    audio = wav_bytes(4.2)
    folder = tmp_path / "spool"
    seen_by_the_model: list[bool] = []

    class ModelThatLooksAtTheSpool(FakeWindowModel):
        def predict(self, windows):
            # the draft is written by a helper thread: wait for it (a bound, not a timing assertion)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                drafts = [p.read_bytes() for p in folder.glob("*.tmp")]
                if drafts == [audio]:
                    break
                time.sleep(0.005)
            seen_by_the_model.append(drafts == [audio] and not list(folder.glob("*.spool")))
            return super().predict(windows)

    metrics = RecordingMetrics()
    predictor = Predictor(FeatureParams(), 0.5, "7", ModelThatLooksAtTheSpool(0.3), None, Batching(64, 5.0))
    runtime = ServingRuntime(predictor, metrics, spool=Spool(folder, metrics))
    answer = asyncio.run(runtime.predict(audio, "p.wav"))
    assert seen_by_the_model == [True]  # the audio alone, as <item>.tmp, before the answer existed
    (item,) = folder.glob("*.spool")
    body, _, record = decode_item(item.read_bytes())
    assert body == audio and record["answer"] == answer and not list(folder.glob("*.tmp"))


def test_a_rejected_upload_leaves_nothing_in_the_spool(tmp_path: Path) -> None:
    metrics = RecordingMetrics()
    spool = Spool(tmp_path / "spool", metrics)
    runtime = ServingRuntime(fake_predictor(0.7, batching=Batching(64, 5.0)), metrics, spool=spool)
    with pytest.raises(Rejected):
        asyncio.run(runtime.predict(b"RIFF not a wav at all" * 100, "bad.wav"))
    deadline = time.monotonic() + 10  # its draft is removed by a helper thread
    while list((tmp_path / "spool").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert list((tmp_path / "spool").iterdir()) == []
    assert metrics.archive.get("dropped", 0) == 0  # not archived, and not a loss either


def test_a_restarted_server_removes_the_old_drafts_a_killed_one_left_and_keeps_recent_ones(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "spool" / "pod"
    folder.mkdir(parents=True)
    (folder / "20260101T000000000000-killed.tmp").write_bytes(b"audio of a request never answered")
    (folder / "20260101T000000000000-recent.tmp").write_bytes(b"maybe another worker's, in flight")
    old = time.time() - 3_600
    os.utime(folder / "20260101T000000000000-killed.tmp", (old, old))
    Spool(tmp_path / "spool", RecordingMetrics(), owner="pod")
    assert sorted(p.name for p in folder.glob("*.tmp")) == ["20260101T000000000000-recent.tmp"]
