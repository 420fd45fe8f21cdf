"""The archive spool on its own: what it counts, what it keeps across restarts, what it drops and says so."""

from __future__ import annotations

import errno
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
