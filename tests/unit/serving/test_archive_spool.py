"""The archive spool on its own: what it counts, what it keeps across restarts, what it drops and says so."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import serving.archive
from serving.app import create_app
from serving.archive import SpoolingArchiver
from serving.batching import Batching
from serving.runtime import ServingRuntime
from tests.fakes.serving import MemoryArchive, RecordingMetrics, fake_predictor, wav_bytes


def _wait_drained(archiver: SpoolingArchiver, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while archiver.pending() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_submits_never_fail_while_the_worker_deletes_what_it_archived(tmp_path: Path) -> None:
    # The handler once listed the spool and stat'ed each file while the worker deleted them: one request
    # in a few hundred failed with FileNotFoundError during a key rotation, when a backlog drained.
    store, metrics = MemoryArchive(), RecordingMetrics()
    archiver = SpoolingArchiver(store, tmp_path / "spool", metrics, retry_base_s=0.001)
    archiver.start()
    errors: list[BaseException] = []

    def submit_many(offset: int) -> None:
        for i in range(400):
            try:
                assert archiver.submit(b"a" * 700, {"i": offset + i})
            except BaseException as exc:  # collected and asserted on below
                errors.append(exc)

    threads = [threading.Thread(target=submit_many, args=(k * 1_000,)) for k in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _wait_drained(archiver)
    finally:
        archiver.stop()
    assert errors == []
    assert len(store.objects) == 2 * 1_600
    assert archiver.pending() == 0 and archiver.spool_bytes() == 0
    assert list((tmp_path / "spool").iterdir()) == []


def test_a_restarted_server_counts_what_the_last_one_left_in_the_spool(tmp_path: Path) -> None:
    store = MemoryArchive()
    store.fail = True
    first = SpoolingArchiver(store, tmp_path / "spool", RecordingMetrics())
    for i in range(3):
        assert first.submit(b"b" * 1_000, {"i": i})
    (tmp_path / "spool" / "half-written.audio.tmp").write_bytes(b"c" * 5_000)  # killed mid-write
    second = SpoolingArchiver(store, tmp_path / "spool", RecordingMetrics())
    assert second.pending() == 3
    assert second.spool_bytes() == first.spool_bytes()
    store.fail = False
    assert second.drain_once() == 3
    assert second.pending() == 0 and second.spool_bytes() == 0


def test_a_full_spool_drops_the_archive_copy_and_counts_it(tmp_path: Path) -> None:
    store, metrics = MemoryArchive(), RecordingMetrics()
    store.fail = True
    archiver = SpoolingArchiver(store, tmp_path / "spool", metrics, max_spool_bytes=2_000)
    assert archiver.submit(b"d" * 1_000, {})
    assert archiver.submit(b"d" * 1_000, {}) is False  # 1,000 + its record + 1,000 > 2,000
    assert metrics.archive["dropped"] == 1 and archiver.pending() == 1


def test_an_unwritable_spool_still_answers_the_prediction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(path: Path, data: bytes) -> None:
        path.with_suffix(path.suffix + ".tmp").write_bytes(data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(serving.archive, "_atomic_write", disk_full)
    metrics = RecordingMetrics()
    archiver = SpoolingArchiver(MemoryArchive(), tmp_path / "spool", metrics)
    runtime = ServingRuntime(fake_predictor(0.7, batching=Batching(64, 5.0)), metrics, archiver=archiver)
    with TestClient(create_app(lambda: runtime), raise_server_exceptions=False) as client:
        resp = client.post("/predict", files={"audio": ("p.wav", wav_bytes(4.2))})
    assert resp.status_code == 200 and resp.json()["probability"] == pytest.approx(0.7)
    assert metrics.archive["dropped"] == 1
    assert "No space left" in (archiver.last_error or "")
    assert list((tmp_path / "spool").iterdir()) == []  # no partial files left to poison the worker


def _archived_ids(store: MemoryArchive) -> set[str]:
    return {key.rsplit("/", 1)[1].rsplit(".", 1)[0] for key in store.objects}


def test_an_upload_that_keeps_failing_backs_off_alone_while_later_uploads_are_archived(
    tmp_path: Path,
) -> None:
    store, metrics = MemoryArchive(), RecordingMetrics()
    archiver = SpoolingArchiver(store, tmp_path / "spool", metrics, retry_base_s=0.05, retry_max_s=0.2)
    assert archiver.submit(b"first" * 100, {"i": 0})
    (stuck,) = [p.stem for p in (tmp_path / "spool").glob("*.json")]
    store.failing = {stuck}  # the oldest item fails every time, as the old worker's head of line did
    for i in range(1, 6):
        assert archiver.submit(b"later" * 100, {"i": i})
    archiver.start()
    try:
        deadline = time.monotonic() + 5
        while archiver.pending() > 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # several of the stuck item's backoffs
    finally:
        archiver.stop()
    assert archiver.pending() == 1 and len(_archived_ids(store)) == 5 and stuck not in _archived_ids(store)
    stuck_attempts = sum(stuck in key for key in store.attempts)
    assert 2 <= stuck_attempts <= 8  # retried with its own backoff (0.05, 0.1, 0.2, 0.2 ...), not in a spin
    store.failing = set()
    assert archiver.drain_once(ignore_backoff=True) == 1 and archiver.pending() == 0


def test_an_upload_the_object_store_refuses_for_good_is_set_aside_in_failed_and_counted(
    tmp_path: Path,
) -> None:
    store, metrics = MemoryArchive(), RecordingMetrics()
    archiver = SpoolingArchiver(store, tmp_path / "spool", metrics)
    assert archiver.submit(b"poison" * 100, {"i": 0})
    (poison,) = [p.stem for p in (tmp_path / "spool").glob("*.json")]
    store.refusing = {poison}
    assert archiver.submit(b"fine" * 100, {"i": 1})
    assert archiver.drain_once() == 1
    assert archiver.pending() == 0 and archiver.spool_bytes() == 0
    assert metrics.archive["poisoned"] == 1 and metrics.archive["failed"] == 0
    failed = tmp_path / "spool" / "failed"
    assert sorted(p.name for p in failed.iterdir()) == [
        f"{poison}.audio",
        f"{poison}.error",
        f"{poison}.json",
    ]
    assert (failed / f"{poison}.audio").read_bytes() == b"poison" * 100  # kept byte for byte
    assert "refused" in (failed / f"{poison}.error").read_text()
    store.refusing = set()
    assert archiver.drain_once() == 0  # never retried on its own: an operator looks at failed/


def test_an_unreadable_spool_item_is_set_aside_instead_of_failing_every_pass(tmp_path: Path) -> None:
    store, metrics = MemoryArchive(), RecordingMetrics()
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "20260101T000000000000-broken.json").write_bytes(b"{not json")
    (spool / "20260101T000000000000-broken.audio").write_bytes(b"x" * 10)
    archiver = SpoolingArchiver(store, spool, metrics)
    assert archiver.submit(b"ok" * 10, {})
    assert archiver.drain_once() == 1
    assert metrics.archive["poisoned"] == 1 and archiver.pending() == 0
    assert (spool / "failed" / "20260101T000000000000-broken.json").exists()


def test_a_pod_adopts_the_spooled_uploads_of_a_pod_that_is_gone_and_leaves_a_live_ones_alone(
    tmp_path: Path,
) -> None:
    store = MemoryArchive()
    store.fail = True
    gone = SpoolingArchiver(store, tmp_path / "spool", RecordingMetrics(), owner="spira-abc-gone")
    alive = SpoolingArchiver(store, tmp_path / "spool", RecordingMetrics(), owner="spira-abc-alive")
    for i in range(3):
        assert gone.submit(b"g" * 500, {"i": i})
    assert alive.submit(b"a" * 500, {})
    old = time.time() - 600  # the gone pod's worker stopped touching its heartbeat ten minutes ago
    os.utime(tmp_path / "spool" / "spira-abc-gone" / ".alive", (old, old))
    store.fail = False
    new = SpoolingArchiver(store, tmp_path / "spool", RecordingMetrics(), owner="spira-def-new")
    assert new.pending() == 3 and new.adopted == 3  # adopted by the start-up sweep
    assert not (tmp_path / "spool" / "spira-abc-gone").exists()
    assert len(list((tmp_path / "spool" / "spira-abc-alive").glob("*.json"))) == 1  # alive: not taken
    assert new.drain_once() == 3 and len(store.objects) == 6
    assert new.adopt_orphans() == 0


def test_the_shutdown_drain_stops_at_its_deadline_and_leaves_the_rest_on_the_spool(tmp_path: Path) -> None:
    class SlowArchive(MemoryArchive):
        def put(self, key: str, body: bytes, content_type: str) -> None:
            time.sleep(0.1)
            super().put(key, body, content_type)

    store = SlowArchive()
    archiver = SpoolingArchiver(store, tmp_path / "spool", RecordingMetrics())
    for i in range(20):
        assert archiver.submit(b"s" * 300, {"i": i})
    started = time.monotonic()
    archived = archiver.drain(deadline_s=0.5)
    elapsed = time.monotonic() - started
    assert 1 <= archived < 20 and elapsed < 0.5 + 0.3  # the deadline plus at most one item's upload
    assert archiver.pending() == 20 - archived
    assert len(list((tmp_path / "spool").glob("*.json"))) == 20 - archived
    assert SpoolingArchiver(store, tmp_path / "spool", RecordingMetrics()).pending() == 20 - archived


def test_the_shutdown_drain_uploads_what_is_spooled_even_items_waiting_out_a_backoff(tmp_path: Path) -> None:
    store = MemoryArchive()
    store.fail = True
    archiver = SpoolingArchiver(store, tmp_path / "spool", RecordingMetrics(), retry_base_s=60)
    for i in range(4):
        assert archiver.submit(b"w" * 300, {"i": i})
    assert archiver.drain_once() == 0  # each now waits 60 s before its next try
    store.fail = False
    assert archiver.drain(deadline_s=5) == 4 and archiver.pending() == 0 and len(store.objects) == 8


def test_the_shutdown_drain_gives_up_at_once_when_the_store_is_down(tmp_path: Path) -> None:
    store = MemoryArchive()
    store.fail = True
    archiver = SpoolingArchiver(store, tmp_path / "spool", RecordingMetrics())
    for i in range(10):
        assert archiver.submit(b"d" * 300, {"i": i})
    started = time.monotonic()
    assert archiver.drain(deadline_s=30) == 0
    assert time.monotonic() - started < 1 and archiver.pending() == 10
    assert len(store.attempts) == archiver.outage_after  # a few tries, not one per item


def test_an_item_another_pod_adopted_meanwhile_is_left_to_it_not_set_aside(tmp_path: Path) -> None:
    store, metrics = MemoryArchive(), RecordingMetrics()
    slow = SpoolingArchiver(store, tmp_path / "spool", metrics, owner="spira-slow")
    assert slow.submit(b"x" * 100, {})
    other = tmp_path / "spool" / "spira-other"
    other.mkdir()
    for item in (tmp_path / "spool" / "spira-slow").glob("2*"):  # what another pod's sweep does
        os.replace(item, other / item.name)
    assert slow.drain_once() == 0
    assert slow.pending() == 0 and metrics.archive["poisoned"] == 0 and store.attempts == []
    assert not (tmp_path / "spool" / "spira-slow" / "failed").exists()


def test_a_busy_pass_keeps_touching_the_heartbeat_so_a_live_pod_is_never_adopted(tmp_path: Path) -> None:
    class SlowArchive(MemoryArchive):
        def put(self, key: str, body: bytes, content_type: str) -> None:
            time.sleep(0.05)
            super().put(key, body, content_type)

    busy = SpoolingArchiver(
        SlowArchive(), tmp_path / "spool", RecordingMetrics(), owner="a", orphan_after_s=0.4
    )
    for i in range(12):
        assert busy.submit(b"b" * 100, {"i": i})
    beats: list[float] = []
    sweeper_found: list[int] = []

    def sweep_while_busy() -> None:
        sweeper = SpoolingArchiver(MemoryArchive(), tmp_path / "spool", RecordingMetrics(), owner="b")
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
