"""Bounded input: hostile uploads that pass the byte limit get their own 4xx code, the same on /predict
and in /predict_batch, and the server's memory for bodies and decodes is bounded by UploadLimits."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
from starlette.testclient import TestClient

from serving.app import MAX_BATCH_FILES, create_app
from serving.batching import Batching
from serving.limits import UploadLimits
from serving.runtime import ServingRuntime
from tests.fakes.serving import RecordingMetrics, fake_predictor, wav_bytes


def _runtime(limits: UploadLimits | None = None) -> ServingRuntime:
    # value None: the fake model's answer follows the features, as a real model's does (NaN in, NaN out)
    return ServingRuntime(fake_predictor(None, limits=limits, batching=Batching(64, 1.0)), RecordingMetrics())


def _client(runtime: ServingRuntime) -> TestClient:
    return TestClient(create_app(lambda: runtime), raise_server_exceptions=False)


def extreme_float_wav(amplitude: float = 1e30, seconds: float = 3.0, rate: int = 16_000) -> bytes:
    """Finite float samples far outside [-1, 1]: every header and sample check passes."""
    samples = np.full((int(seconds * rate), 1), amplitude, dtype=np.float32)
    samples[::2] *= -1
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def flac_bomb(seconds: float = 59.0, rate: int = 192_000, channels: int = 2) -> bytes:
    """A constant signal compresses to ~42 KB of FLAC that decodes to ~90 MB of float32."""
    samples = np.full((int(seconds * rate), channels), 1000, dtype=np.int16)
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _predict_and_batch(runtime: ServingRuntime, data: bytes) -> tuple[tuple[int, dict], dict]:
    with _client(runtime) as client:
        single = client.post("/predict", files={"audio": ("x.wav", data)})
        batch = client.post(
            "/predict_batch", files=[("audio", ("x.wav", data)), ("audio", ("ok.wav", wav_bytes(4.0)))]
        )
    assert batch.status_code == 200, batch.text
    bad, good = batch.json()["results"]
    assert "probability" in good  # the good file of the batch is still answered
    return (single.status_code, single.json()), bad


def test_a_float_wav_of_extreme_amplitude_is_422_non_finite_features_on_both_routes() -> None:
    runtime = _runtime()
    (status, body), inline = _predict_and_batch(runtime, extreme_float_wav())
    assert (status, body["error"]) == (422, "non_finite_features")
    assert (inline["status"], inline["error"]) == (422, "non_finite_features")
    assert runtime.metrics.rejections == ["non_finite_features", "non_finite_features"]


def test_the_largest_finite_float32_amplitude_is_a_4xx_too() -> None:
    (status, body), inline = _predict_and_batch(_runtime(), extreme_float_wav(3.0e38))
    assert 400 <= status < 500 and body["error"] in {"non_finite_features", "non_finite"}
    assert inline["error"] == body["error"]


def test_two_files_on_predict_is_400_one_file_only() -> None:
    files = [("audio", ("a.wav", wav_bytes(4.0))), ("audio", ("b.wav", wav_bytes(4.0)))]
    with _client(_runtime()) as client:
        resp = client.post("/predict", files=files)
    assert (resp.status_code, resp.json()["error"]) == (400, "one_file_only")


def test_a_batch_over_the_file_limit_is_400_too_many_files() -> None:
    clip = wav_bytes(1.5, 16_000)
    files = [("audio", (f"{i}.wav", clip)) for i in range(MAX_BATCH_FILES + 1)]
    with _client(_runtime()) as client:
        resp = client.post("/predict_batch", files=files)
    assert (resp.status_code, resp.json()["error"]) == (400, "too_many_files")
