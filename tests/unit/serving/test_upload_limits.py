"""Bad uploads are refused with a 4xx status, a stable code and a reason, before costly decoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from serving.limits import Rejected, UploadLimits
from tests.fakes.serving import fake_predictor, wav_bytes


def _rejection(data: bytes, limits: UploadLimits | None = None) -> Rejected:
    predictor = fake_predictor(limits=limits)
    with pytest.raises(Rejected) as err:
        predictor.prepare(data)
    return err.value


def _raw_wav(samples: np.ndarray, rate: int, subtype: str = "FLOAT") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 400, "empty_upload"),
        (b"this is not audio at all" * 10, 415, "unsupported_audio"),
        (b"%PDF-1.4\n" + bytes(200), 415, "unsupported_audio"),
    ],
)
def test_empty_and_non_audio_uploads_are_refused(data: bytes, status: int, code: str) -> None:
    err = _rejection(data)
    assert (err.status, err.code) == (status, code)


def test_an_upload_over_the_byte_limit_is_413_before_decoding() -> None:
    err = _rejection(wav_bytes(2.0), UploadLimits(max_bytes=1000))
    assert (err.status, err.code) == (413, "too_large")


def test_a_recording_longer_than_the_limit_is_413() -> None:
    err = _rejection(wav_bytes(12.0, rate=8000), UploadLimits(max_duration_s=10))
    assert (err.status, err.code) == (413, "too_long")


def test_a_clip_below_the_minimum_duration_is_422() -> None:
    err = _rejection(wav_bytes(0.5))
    assert (err.status, err.code) == (422, "too_short")


def test_more_than_two_channels_is_422() -> None:
    err = _rejection(wav_bytes(2.0, channels=3))
    assert (err.status, err.code) == (422, "bad_channels")


def test_a_sample_rate_outside_the_range_is_422() -> None:
    err = _rejection(wav_bytes(2.0, rate=4000))
    assert (err.status, err.code) == (422, "bad_sample_rate")


def test_nan_samples_are_422() -> None:
    samples = np.full((16000 * 2, 1), 0.2, dtype=np.float32)
    samples[100] = np.nan
    err = _rejection(_raw_wav(samples, 16000))
    assert (err.status, err.code) == (422, "non_finite")


def test_a_silent_recording_is_422() -> None:
    err = _rejection(_raw_wav(np.zeros((16000 * 3, 1), dtype=np.float32), 16000, "PCM_16"))
    assert (err.status, err.code) == (422, "silent")


def test_a_truncated_wav_is_422_or_415_never_accepted() -> None:
    data = wav_bytes(5.0)
    err = _rejection(data[: len(data) // 3])
    assert err.status in (415, 422)


def test_a_clip_shorter_than_a_window_is_padded_like_training_pads_it() -> None:
    prepared = fake_predictor().prepare(wav_bytes(2.5, rate=44_100, channels=2))
    assert prepared.windows.shape == (1, 401, 40)
    assert prepared.sample_rate_in == 44_100 and prepared.channels == 2


def test_flac_and_ogg_are_accepted() -> None:
    for fmt, subtype in (("FLAC", "PCM_16"), ("OGG", "VORBIS")):
        answer = fake_predictor().predict_bytes(wav_bytes(5.0, rate=48_000, fmt=fmt, subtype=subtype))
        assert 0.0 <= answer["probability"] <= 1.0
