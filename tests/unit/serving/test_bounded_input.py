"""Bounded input: hostile uploads that pass the byte limit get their own 4xx code, the same on /predict
and in /predict_batch, and the server's memory for bodies and decodes is bounded by UploadLimits."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from starlette.testclient import TestClient

from serving.app import MAX_BATCH_FILES, create_app
from serving.batching import Batching
from serving.limits import AudioHeader, Rejected, UploadLimits, check_header, decode_upload
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


def _with_streaminfo_frames(flac: bytes, frames: int) -> bytes:
    """The FLAC with its STREAMINFO total-samples field (low 36 bits of bytes 18..25) rewritten."""
    field = int.from_bytes(flac[18:26], "big")
    field = (field & ~((1 << 36) - 1)) | frames
    return flac[:18] + field.to_bytes(8, "big") + flac[26:]


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


def test_the_flac_bomb_is_413_too_many_samples_on_both_routes_before_decoding() -> None:
    bomb = flac_bomb()
    assert len(bomb) < 64 * 1024  # far under the byte limit: only the samples cap stops it
    runtime = _runtime()
    (status, body), inline = _predict_and_batch(runtime, bomb)
    assert (status, body["error"]) == (413, "too_many_samples")
    assert (inline["status"], inline["error"]) == (413, "too_many_samples")


def test_a_flac_whose_header_hides_its_length_is_refused() -> None:
    hidden = _with_streaminfo_frames(flac_bomb(), 0)  # 0: "unknown", libsndfile reports the maximum count
    (status, body), inline = _predict_and_batch(_runtime(), hidden)
    assert status == 413 and body["error"] in {"too_long", "too_many_samples"}
    assert inline["error"] == body["error"]


def test_a_header_that_promises_fewer_samples_than_the_file_holds_decodes_no_more() -> None:
    five_seconds = 5 * 192_000
    upload = decode_upload(_with_streaminfo_frames(flac_bomb(), five_seconds), UploadLimits())
    assert upload.samples.shape == (five_seconds, 2)


def test_the_longest_phone_recording_in_stereo_is_within_the_samples_cap() -> None:
    check_header(AudioHeader(48_000, 2, 60 * 48_000), UploadLimits())  # raises if refused


@pytest.mark.parametrize(("rate", "channels", "seconds"), [(192_000, 2, 30.0), (96_000, 2, 59.0)])
def test_a_header_over_the_samples_cap_is_413_whatever_its_duration(rate, channels, seconds) -> None:
    with pytest.raises(Rejected) as err:
        check_header(AudioHeader(rate, channels, int(rate * seconds)), UploadLimits())
    assert (err.value.status, err.value.code) == (413, "too_many_samples")
