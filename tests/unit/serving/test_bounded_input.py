"""Bounded input: hostile uploads that pass the byte limit get their own 4xx code, the same on /predict
and in /predict_batch, and the server's memory for bodies and decodes is bounded by UploadLimits."""

from __future__ import annotations

import asyncio
import io
import threading

import numpy as np
import pytest
import soundfile as sf
from starlette.testclient import TestClient

from serving.admission import BodyBudget
from serving.app import MAX_BATCH_FILES, MULTIPART_OVERHEAD, create_app
from serving.batching import Batching
from serving.inference import Predictor, WindowModel
from serving.limits import BODY_COPIES, AudioHeader, Rejected, UploadLimits, check_header, decode_upload
from serving.runtime import ServingRuntime
from spira_core.params import FeatureParams
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


class HeldWindowModel(WindowModel):
    """Answers 0.5 once `release` is set: an upload stays in flight (its body held) as long as a test wants."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def predict(self, windows: np.ndarray) -> np.ndarray:
        self.entered.set()
        assert self.release.wait(10), "the test never released the model"
        return np.full(len(windows), 0.5)


def test_a_hold_beyond_the_budget_waits_for_room_first_come_first_served() -> None:
    async def scenario() -> list[str]:
        budget, order = BodyBudget(100, wait_s=5.0, retry_after_s=1), []

        async def upload(name: str, n: int, seconds: float) -> None:
            async with budget.hold(n):
                order.append(name)
                await asyncio.sleep(seconds)

        first = asyncio.create_task(upload("first", 80, 0.2))
        await asyncio.sleep(0.01)
        big = asyncio.create_task(upload("big", 60, 0.0))  # must wait for "first"
        await asyncio.sleep(0.01)
        small = asyncio.create_task(upload("small", 10, 0.0))  # fits now, but queues behind "big"
        await asyncio.gather(first, big, small)
        assert budget.held == 0 and budget.peak <= 100
        return order

    assert asyncio.run(scenario()) == ["first", "big", "small"]


def test_a_hold_that_cannot_be_admitted_in_time_is_429_busy_and_leaves_the_budget_whole() -> None:
    async def scenario() -> Rejected:
        budget = BodyBudget(100, wait_s=0.05, retry_after_s=3)
        async with budget.hold(100):
            with pytest.raises(Rejected) as err:
                async with budget.hold(1):
                    pass
        assert budget.held == 0
        async with budget.hold(100):  # the budget is whole again
            pass
        return err.value

    err = asyncio.run(scenario())
    assert (err.status, err.code, err.retry_after_s) == (429, "busy", 3)


def test_uploads_beyond_the_memory_budget_are_answered_429_busy_with_retry_after() -> None:
    clip = wav_bytes(8.0, 16_000)
    # room for one request in flight (counted at BODY_COPIES × its body, declared or not), never two
    room = BODY_COPIES * (len(clip) + 1024 + MULTIPART_OVERHEAD)
    assert 2 * BODY_COPIES * len(clip) > room
    limits = UploadLimits(max_bytes=len(clip) + 1024, max_inflight_bytes=room, busy_wait_s=0.2)
    model = HeldWindowModel()
    runtime = ServingRuntime(
        Predictor(FeatureParams(), 0.5, "7", model, limits, Batching(64, 1.0)), RecordingMetrics()
    )
    with _client(runtime) as client:
        first: list = []
        thread = threading.Thread(
            target=lambda: first.append(client.post("/predict", files={"audio": ("a.wav", clip)}))
        )
        thread.start()
        assert model.entered.wait(10)
        second = client.post("/predict", files={"audio": ("b.wav", clip)})
        batch = client.post("/predict_batch", files={"audio": ("c.wav", clip)})
        model.release.set()
        thread.join(10)
        third = client.post("/predict", files={"audio": ("d.wav", clip)})
    assert first[0].status_code == 200, first[0].text
    assert third.status_code == 200, third.text
    for resp in (second, batch):
        assert (resp.status_code, resp.json()["error"]) == (429, "busy")
        assert resp.headers["retry-after"] == str(limits.retry_after_s)
    assert runtime.bodies.held == 0 and 0 < runtime.bodies.peak <= limits.max_inflight_bytes
    assert runtime.metrics.rejections == ["busy", "busy"]
