"""The HTTP app through its ASGI interface, with a fake model: answers, errors as JSON, batching, archive."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from serving.app import create_app
from serving.archive import Spool, Uploader
from serving.batching import Batching
from serving.limits import UploadLimits
from serving.runtime import ServingRuntime
from tests.fakes.serving import MemoryArchive, RecordingMetrics, fake_predictor, wav_bytes

ANSWER_FIELDS = {
    "probability",
    "label",
    "threshold",
    "model_version",
    "windows",
    "duration_s",
    "sample_rate_in",
}


def _runtime(
    value: float | None = None,
    spool: Spool | None = None,
    max_latency_ms: float = 5.0,
    limits: UploadLimits | None = None,
) -> ServingRuntime:
    predictor = fake_predictor(value, limits=limits, batching=Batching(64, max_latency_ms))
    metrics = spool.metrics if spool else RecordingMetrics()
    return ServingRuntime(predictor, metrics, spool=spool)


def _client(runtime: ServingRuntime) -> TestClient:
    return TestClient(create_app(lambda: runtime), raise_server_exceptions=False)


def test_a_valid_upload_gets_every_answer_field() -> None:
    with _client(_runtime(0.8)) as client:
        resp = client.post("/predict", files={"audio": ("a.wav", wav_bytes(5.7, 48_000), "audio/wav")})
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == ANSWER_FIELDS
    assert body["label"] == "patient" and body["probability"] == pytest.approx(0.8)
    assert (body["model_version"], body["windows"], body["sample_rate_in"]) == ("7", 2, 48_000)


def test_the_label_follows_the_threshold_stored_with_the_model() -> None:
    with _client(_runtime(0.3)) as client:
        body = client.post("/predict", files={"audio": ("a.wav", wav_bytes(4.0), "audio/wav")}).json()
    assert body["label"] == "control" and body["threshold"] == 0.5


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": {"x": "1"}, "files": {"other": ("a.wav", b"RIFF", "audio/wav")}}, 400, "missing_audio"),
        ({"content": b"raw bytes", "headers": {"content-type": "audio/wav"}}, 415, "not_multipart"),
        ({"files": {"audio": ("a.txt", b"hello", "text/plain")}}, 415, "unsupported_audio"),
        (
            {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=x"}},
            400,
            None,
        ),
    ],
)
def test_bad_requests_are_json_4xx_with_a_code(kwargs, status, code) -> None:
    runtime = _runtime()
    with _client(runtime) as client:
        resp = client.post("/predict", **kwargs)
    assert resp.status_code == status
    body = resp.json()
    assert set(body) == {"error", "detail"}
    if code:
        assert body["error"] == code
    assert runtime.metrics.rejections == [body["error"]]


def test_an_oversized_body_is_refused_from_its_declared_length() -> None:
    runtime = _runtime(limits=UploadLimits(max_bytes=10_000))
    with _client(runtime) as client:
        resp = client.post("/predict", files={"audio": ("a.wav", wav_bytes(5.0), "audio/wav")})
    assert resp.status_code == 413 and resp.json()["error"] == "too_large"


def test_concurrent_requests_share_forward_passes() -> None:
    runtime = _runtime(max_latency_ms=200)
    clip = wav_bytes(5.0, 16_000)
    with _client(runtime) as client:
        threads = [
            threading.Thread(target=lambda: client.post("/predict", files={"audio": ("a.wav", clip)}))
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    calls = runtime.predictor.model.calls
    assert sum(calls) == 8 * 2  # 5 s → 2 windows each
    assert len(calls) < 8


def test_predict_batch_answers_each_file_and_reports_bad_ones_inline() -> None:
    files = [
        ("audio", ("good.wav", wav_bytes(4.5), "audio/wav")),
        ("audio", ("bad.wav", b"nope" * 50, "audio/wav")),
    ]
    with _client(_runtime(0.6)) as client:
        resp = client.post("/predict_batch", files=files)
    assert resp.status_code == 200
    good, bad = resp.json()["results"]
    assert good["file"] == "good.wav" and good["label"] == "patient"
    assert bad == {"file": "bad.wav", "error": "unsupported_audio", "detail": bad["detail"], "status": 415}


def _uploading(uploader: Uploader) -> tuple[threading.Event, threading.Thread]:
    """The uploader's loop on a thread, as its own process runs it."""
    stop = threading.Event()
    thread = threading.Thread(target=uploader.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def test_uploads_are_archived_off_the_request_path(tmp_path: Path) -> None:
    store, metrics = MemoryArchive(), RecordingMetrics()
    spool = Spool(tmp_path / "spool", metrics)
    uploader = Uploader(store, tmp_path / "spool", RecordingMetrics(), retry_base_s=0.05, poll_s=0.02)
    stop, thread = _uploading(uploader)
    try:
        with _client(_runtime(0.9, spool)) as client:
            assert client.post("/predict", files={"audio": ("p.wav", wav_bytes(4.2))}).status_code == 200
        deadline = time.monotonic() + 5
        while any((tmp_path / "spool").glob("*.spool")) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)
    assert sorted(k.rsplit(".", 1)[1] for k in store.objects) == ["audio", "json"]
    assert uploader.uploaded == 1


def test_an_archive_outage_never_fails_a_prediction_and_nothing_is_lost(tmp_path: Path) -> None:
    store, metrics = MemoryArchive(), RecordingMetrics()
    store.fail = True
    spool = Spool(tmp_path / "spool", metrics)
    uploader = Uploader(
        store, tmp_path / "spool", RecordingMetrics(), retry_base_s=0.05, retry_max_s=0.1, poll_s=0.02
    )
    stop, thread = _uploading(uploader)
    try:
        with _client(_runtime(0.9, spool)) as client:
            codes = [
                client.post("/predict", files={"audio": ("p.wav", wav_bytes(4.2, seed=i))}).status_code
                for i in range(3)
            ]
        assert codes == [200, 200, 200]
        time.sleep(0.3)
        assert uploader.pending() == 3 and uploader.failures >= 1
        store.fail = False
        deadline = time.monotonic() + 5
        while any((tmp_path / "spool").glob("*.spool")) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)
    assert len(store.objects) == 6
