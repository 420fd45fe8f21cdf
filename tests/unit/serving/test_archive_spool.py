"""The archive spool on its own: the server's side (`Spool`: one write per upload, what it counts, what it
drops and says so) and the uploader's (`Uploader`: per-item retry, failed/, adoption, the drain), with an
object store in memory that subclasses the store's port."""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from serving.app import create_app
from serving.archive import STATUS_FILE, Spool, Uploader, decode_item
from serving.batching import Batching
from serving.runtime import ServingRuntime
from serving.uploader import StatusFileMetrics
from tests.fakes.serving import MemoryArchive, RecordingMetrics, fake_predictor, wav_bytes


def _items(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.spool"))


def test_an_upload_is_written_once_as_one_complete_file_holding_the_audio_and_its_record(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "spool", RecordingMetrics())
    audio = bytes(range(256)) * 40
    assert spool.submit(audio, {"label": "patient"}, "p.wav")
    (item,) = _items(tmp_path / "spool")
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == [item.name]  # no .tmp left
    body, raw, record = decode_item(item.read_bytes())
    assert body == audio and json.loads(raw) == record
    assert record["id"] == item.stem and record["answer"] == {"label": "patient"}
    assert record["key_prefix"].startswith("uploads/") and record["key_prefix"].endswith(item.stem)
    assert spool.pending() == 1 and spool.spool_bytes() == item.stat().st_size


def test_submits_never_fail_while_the_uploader_deletes_what_it_archived(tmp_path: Path) -> None:
    # The handler once listed the spool and stat'ed each file while the worker deleted them: one request
    # in a few hundred failed with FileNotFoundError during a key rotation, when a backlog drained.
    store = MemoryArchive()
    spool = Spool(tmp_path / "spool", RecordingMetrics(), refresh_s=0.01)
    spool.start()
    uploader = Uploader(store, tmp_path / "spool", RecordingMetrics(), retry_base_s=0.001, poll_s=0.005)
    stop = threading.Event()
    uploading = threading.Thread(target=uploader.run, args=(stop,))
    uploading.start()
    errors: list[BaseException] = []

    def submit_many(offset: int) -> None:
        for i in range(200):
            try:
                assert spool.submit(b"a" * 700, {"i": offset + i})
            except BaseException as exc:  # collected and asserted on below
                errors.append(exc)

    threads = [threading.Thread(target=submit_many, args=(k * 1_000,)) for k in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 20
        while _items(tmp_path / "spool") and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        uploading.join(10)
        spool.stop()
    assert errors == []
    assert len(store.objects) == 2 * 800
    spool.refresh()
    assert spool.pending() == 0 and spool.spool_bytes() == 0
    assert list((tmp_path / "spool").iterdir()) == []


def test_a_restarted_server_counts_what_the_last_one_left_and_a_restarted_uploader_uploads_it(
    tmp_path: Path,
) -> None:
    first = Spool(tmp_path / "spool", RecordingMetrics())
    for i in range(3):
        assert first.submit(b"b" * 1_000, {"i": i})
    (tmp_path / "spool" / "half-written.tmp").write_bytes(b"c" * 5_000)  # killed mid-write
    second = Spool(tmp_path / "spool", RecordingMetrics())
    assert second.pending() == 3 and second.spool_bytes() == first.spool_bytes()
    store = MemoryArchive()
    assert Uploader(store, tmp_path / "spool", RecordingMetrics()).drain_once() == 3
    second.refresh()
    assert second.pending() == 0 and second.spool_bytes() == 0 and len(store.objects) == 6


def test_a_full_spool_drops_the_archive_copy_and_counts_it(tmp_path: Path) -> None:
    metrics = RecordingMetrics()
    spool = Spool(tmp_path / "spool", metrics, max_spool_bytes=2_000)
    assert spool.submit(b"d" * 1_000, {})
    assert spool.submit(b"d" * 1_000, {}) is False  # 1,000 + its record + 1,000 > 2,000
    assert metrics.archive["dropped"] == 1 and spool.pending() == 1


def test_an_unwritable_spool_still_answers_the_prediction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(fd: int, parts: list[bytes]) -> int:
        os.write(fd, parts[0][:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    metrics = RecordingMetrics()
    spool = Spool(tmp_path / "spool", metrics)
    monkeypatch.setattr(os, "writev", disk_full)
    runtime = ServingRuntime(fake_predictor(0.7, batching=Batching(64, 5.0)), metrics, spool=spool)
    with TestClient(create_app(lambda: runtime), raise_server_exceptions=False) as client:
        resp = client.post("/predict", files={"audio": ("p.wav", wav_bytes(4.2))})
    assert resp.status_code == 200 and resp.json()["probability"] == pytest.approx(0.7)
    assert metrics.archive["dropped"] == 1
    assert "No space left" in (spool.last_error or "")
    assert list((tmp_path / "spool").iterdir()) == []  # no partial file left behind


def _archived_ids(store: MemoryArchive) -> set[str]:
    return {key.rsplit("/", 1)[1].rsplit(".", 1)[0] for key in store.objects}


def test_an_upload_that_keeps_failing_backs_off_alone_while_later_uploads_are_archived(
    tmp_path: Path,
) -> None:
    store = MemoryArchive()
    spool = Spool(tmp_path / "spool", RecordingMetrics())
    assert spool.submit(b"first" * 100, {"i": 0})
    (stuck,) = [p.stem for p in _items(tmp_path / "spool")]
    store.failing = {stuck}  # the oldest item fails every time, as the old worker's head of line did
    for i in range(1, 6):
        assert spool.submit(b"later" * 100, {"i": i})
    uploader = Uploader(store, tmp_path / "spool", RecordingMetrics(), retry_base_s=0.05, retry_max_s=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=uploader.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while len(_items(tmp_path / "spool")) > 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # several of the stuck item's backoffs
    finally:
        stop.set()
        thread.join(5)
    assert uploader.pending() == 1 and len(_archived_ids(store)) == 5 and stuck not in _archived_ids(store)
    stuck_attempts = sum(stuck in key for key in store.attempts)
    assert 2 <= stuck_attempts <= 8  # retried with its own backoff (0.05, 0.1, 0.2, 0.2 ...), not in a spin
    store.failing = set()
    assert uploader.drain_once(ignore_backoff=True) == 1 and uploader.pending() == 0


def test_an_upload_the_object_store_refuses_for_good_is_set_aside_in_failed_and_counted(
    tmp_path: Path,
) -> None:
    store, metrics = MemoryArchive(), RecordingMetrics()
    spool = Spool(tmp_path / "spool", RecordingMetrics())
    assert spool.submit(b"poison" * 100, {"i": 0})
    (poison,) = [p.stem for p in _items(tmp_path / "spool")]
    store.refusing = {poison}
    assert spool.submit(b"fine" * 100, {"i": 1})
    uploader = Uploader(store, tmp_path / "spool", metrics)
    assert uploader.drain_once() == 1 and uploader.pending() == 0
    assert metrics.archive["poisoned"] == 1 and metrics.archive["failed"] == 0
    failed = tmp_path / "spool" / "failed"
    assert sorted(p.name for p in failed.iterdir()) == [f"{poison}.error", f"{poison}.spool"]
    assert decode_item((failed / f"{poison}.spool").read_bytes())[0] == b"poison" * 100  # kept byte for byte
    assert "refused" in (failed / f"{poison}.error").read_text()
    store.refusing = set()
    assert uploader.drain_once() == 0  # never retried on its own: an operator looks at failed/


def test_an_unreadable_spool_item_is_set_aside_instead_of_failing_every_pass(tmp_path: Path) -> None:
    store, metrics = MemoryArchive(), RecordingMetrics()
    spool = tmp_path / "spool"
    Spool(spool, RecordingMetrics()).submit(b"ok" * 10, {})
    (spool / "20260101T000000000000-broken.spool").write_bytes(b"{not json" + (9).to_bytes(8, "little"))
    uploader = Uploader(store, spool, metrics)
    assert uploader.drain_once() == 1
    assert metrics.archive["poisoned"] == 1 and uploader.pending() == 0
    assert (spool / "failed" / "20260101T000000000000-broken.spool").exists()


def test_items_of_the_previous_two_file_layout_are_rewritten_once_and_uploaded(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    record = {"id": "20260101T000000000000-legacy", "key_prefix": "uploads/2026/01/01/legacy"}
    (spool / "20260101T000000000000-legacy.audio").write_bytes(b"old" * 50)
    (spool / "20260101T000000000000-legacy.json").write_text(json.dumps(record))
    store = MemoryArchive()
    assert Uploader(store, spool, RecordingMetrics()).drain_once() == 1
    assert store.objects["uploads/2026/01/01/legacy.audio"] == b"old" * 50
    assert json.loads(store.objects["uploads/2026/01/01/legacy.json"]) == record
    assert list(spool.iterdir()) == []


def test_the_uploaders_counts_reach_the_servers_metrics_through_its_status_file(tmp_path: Path) -> None:
    server_metrics = RecordingMetrics()
    spool = Spool(tmp_path / "spool", server_metrics, owner="pod")
    for i in range(3):
        assert spool.submit(b"m" * 100, {"i": i})
    spool.refresh()
    assert server_metrics.archive["pending"] == 3 and server_metrics.archive["uploaded"] == 0
    status = tmp_path / "spool" / "pod" / STATUS_FILE

    def uploader_process(store: MemoryArchive) -> tuple[Uploader, StatusFileMetrics]:
        metrics = StatusFileMetrics(status)
        return Uploader(store, tmp_path / "spool", metrics, owner="pod"), metrics

    uploader, metrics = uploader_process(MemoryArchive())
    assert uploader.drain_once() == 3
    metrics.flush()
    spool.refresh()
    spool.refresh()  # read twice: counted once
    assert server_metrics.archive == {"pending": 0, "uploaded": 3, "failed": 0, "dropped": 0, "poisoned": 0}
    assert spool.submit(b"m" * 100, {})
    down = MemoryArchive()
    down.fail = True
    uploader, metrics = uploader_process(down)  # a restarted uploader counts from 0 again
    assert uploader.drain_once() == 0
    metrics.flush()
    spool.refresh()
    assert server_metrics.archive["uploaded"] == 3 and server_metrics.archive["failed"] == 1
    assert server_metrics.archive["pending"] == 1
    restarted = RecordingMetrics()
    Spool(tmp_path / "spool", restarted, owner="pod").refresh()  # a new server beside the same uploader
    assert restarted.archive["failed"] == 0 and restarted.archive["pending"] == 1


def test_a_pod_adopts_the_spooled_uploads_of_a_pod_that_is_gone_and_leaves_a_live_ones_alone(
    tmp_path: Path,
) -> None:
    gone = Spool(tmp_path / "spool", RecordingMetrics(), owner="spira-abc-gone")
    alive = Spool(tmp_path / "spool", RecordingMetrics(), owner="spira-abc-alive")
    for i in range(3):
        assert gone.submit(b"g" * 500, {"i": i})
    assert alive.submit(b"a" * 500, {})
    old = time.time() - 600  # the gone pod's server and uploader stopped touching its heartbeat
    os.utime(tmp_path / "spool" / "spira-abc-gone" / ".alive", (old, old))
    store = MemoryArchive()
    new = Uploader(store, tmp_path / "spool", RecordingMetrics(), owner="spira-def-new")
    assert new.pending() == 3 and new.adopted == 3  # adopted by the start-up sweep
    assert not (tmp_path / "spool" / "spira-abc-gone").exists()
    assert len(_items(tmp_path / "spool" / "spira-abc-alive")) == 1  # alive: not taken
    assert new.drain_once() == 3 and len(store.objects) == 6
    assert new.adopt_orphans() == 0


def _spooled(tmp_path: Path, n: int) -> None:
    spool = Spool(tmp_path / "spool", RecordingMetrics())
    for i in range(n):
        assert spool.submit(b"s" * 300, {"i": i})


def test_the_shutdown_drain_stops_at_its_deadline_and_leaves_the_rest_on_the_spool(tmp_path: Path) -> None:
    class SlowArchive(MemoryArchive):
        def put(self, key: str, body: bytes, content_type: str) -> None:
            time.sleep(0.1)
            super().put(key, body, content_type)

    store = SlowArchive()
    _spooled(tmp_path, 20)
    uploader = Uploader(store, tmp_path / "spool", RecordingMetrics())
    started = time.monotonic()
    archived = uploader.drain(deadline_s=0.5)
    elapsed = time.monotonic() - started
    assert 1 <= archived < 20 and elapsed < 0.5 + 0.3  # the deadline plus at most one item's upload
    assert uploader.pending() == 20 - archived
    assert len(_items(tmp_path / "spool")) == 20 - archived
    assert Uploader(store, tmp_path / "spool", RecordingMetrics()).pending() == 20 - archived


def test_the_shutdown_drain_uploads_what_is_spooled_even_items_waiting_out_a_backoff(tmp_path: Path) -> None:
    store = MemoryArchive()
    store.fail = True
    _spooled(tmp_path, 4)
    uploader = Uploader(store, tmp_path / "spool", RecordingMetrics(), retry_base_s=60)
    assert uploader.drain_once() == 0  # each now waits 60 s before its next try
    store.fail = False
    assert uploader.drain(deadline_s=5) == 4 and uploader.pending() == 0 and len(store.objects) == 8


def test_the_shutdown_drain_gives_up_at_once_when_the_store_is_down(tmp_path: Path) -> None:
    store = MemoryArchive()
    store.fail = True
    _spooled(tmp_path, 10)
    uploader = Uploader(store, tmp_path / "spool", RecordingMetrics())
    started = time.monotonic()
    assert uploader.drain(deadline_s=30) == 0
    assert time.monotonic() - started < 1 and uploader.pending() == 10
    assert len(store.attempts) == uploader.outage_after  # a few tries, not one per item


def test_an_item_another_pod_adopted_meanwhile_is_left_to_it_not_set_aside(tmp_path: Path) -> None:
    store, metrics = MemoryArchive(), RecordingMetrics()
    assert Spool(tmp_path / "spool", RecordingMetrics(), owner="spira-slow").submit(b"x" * 100, {})
    slow = Uploader(store, tmp_path / "spool", metrics, owner="spira-slow")
    assert slow.pending() == 1
    other = tmp_path / "spool" / "spira-other"
    other.mkdir()
    for item in (tmp_path / "spool" / "spira-slow").glob("2*"):  # what another pod's sweep does
        os.replace(item, other / item.name)
    slow.scan = lambda: slow.pending()  # type: ignore[method-assign]  # it still believes the item is its own
    assert slow.drain_once() == 0
    assert slow.pending() == 0 and metrics.archive["poisoned"] == 0 and store.attempts == []
    assert not (tmp_path / "spool" / "spira-slow" / "failed").exists()


def test_a_busy_pass_keeps_touching_the_heartbeat_so_a_live_pod_is_never_adopted(tmp_path: Path) -> None:
    class SlowArchive(MemoryArchive):
        def put(self, key: str, body: bytes, content_type: str) -> None:
            time.sleep(0.05)
            super().put(key, body, content_type)

    spool = Spool(tmp_path / "spool", RecordingMetrics(), owner="a")
    for i in range(12):
        assert spool.submit(b"b" * 100, {"i": i})
    busy = Uploader(SlowArchive(), tmp_path / "spool", RecordingMetrics(), owner="a", orphan_after_s=0.4)
    beats: list[float] = []
    sweeper_found: list[int] = []

    def sweep_while_busy() -> None:
        sweeper = Uploader(MemoryArchive(), tmp_path / "spool", RecordingMetrics(), owner="b")
        for _ in range(10):
            time.sleep(0.1)
            beats.append((tmp_path / "spool" / "a" / ".alive").stat().st_mtime)
            sweeper_found.append(sweeper.adopt_orphans())
        sweeper_found.append(sweeper.adopted)  # the start-up sweep's too

    sweeper = threading.Thread(target=sweep_while_busy)
    sweeper.start()
    assert busy.drain_once() == 12  # 12 items × 2 puts × 50 ms = 1.2 s, three times orphan_after_s
    sweeper.join()
    assert sum(sweeper_found) == 0 and len(set(beats)) > 1
