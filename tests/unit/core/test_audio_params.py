from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from spira_core import audio
from spira_core.params import FeatureParams, FeatureParamsError


def _wav_bytes(data: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, data, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def test_stereo_48k_audio_is_mixed_to_mono_and_resampled_to_16k(tmp_path):
    t = np.arange(48000) / 48000
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "s.wav"
    sf.write(path, np.stack([left, left * 0.0], axis=1), 48000)
    wav = audio.load_audio(path, 16000)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert abs(len(wav) - 16000) <= 1
    assert np.abs(wav).max() == pytest.approx(0.25, abs=0.01)  # mean of the two channels
    assert np.array_equal(audio.load_audio(path.read_bytes(), 16000), wav)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"", audio.EmptyAudioError),
        (b"RIFF....WAVEfmt garbage" * 3, audio.CorruptAudioError),
        (_wav_bytes(np.zeros((0, 1)), 16000), audio.EmptyAudioError),
        (_wav_bytes(np.array([0.1, np.nan, 0.2]), 16000, "FLOAT"), audio.NonFiniteAudioError),
    ],
)
def test_bad_audio_raises_a_named_audio_error(payload, error):
    with pytest.raises(error):
        audio.load_audio(payload, 16000)
    assert issubclass(error, audio.AudioError)


def test_a_missing_or_empty_file_raises_an_audio_error(tmp_path):
    with pytest.raises(audio.CorruptAudioError):
        audio.load_audio(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(audio.EmptyAudioError):
        audio.load_audio(tmp_path / "empty.wav")


def test_feature_params_round_trip_through_json_and_keep_spira_defaults():
    p = FeatureParams()
    assert (p.sample_rate, p.n_mfcc, p.n_mels, p.n_fft, p.win_length, p.hop_length) == (
        16000,
        40,
        40,
        1200,
        400,
        160,
    )
    assert (p.temporal_mode, p.window_s, p.step_s, p.top_db) == ("window", 4.0, 1.0, 80.0)
    q = FeatureParams(temporal_mode="padding", max_len_s=7.5)
    assert FeatureParams.from_json(q.to_json()) == q
    assert FeatureParams.from_dict(p.to_dict()) == p


@pytest.mark.parametrize(
    "doc",
    [
        {"temporal_mode": "sideways", "version": 1},
        {"version": 99},
        {"n_mfcc": 40},
        {"bogus": 1, "version": 1},
    ],
)
def test_invalid_feature_params_are_refused_with_a_clear_error(doc):
    with pytest.raises(FeatureParamsError):
        FeatureParams.from_dict(doc)


def test_resampling_is_librosas_soxr_hq_resampler():
    import librosa

    wav = np.random.default_rng(0).standard_normal(44100).astype(np.float32) * 0.1
    ours = audio.resample(wav, 44100, 16000)
    ref = librosa.resample(wav, orig_sr=44100, target_sr=16000, res_type="soxr_hq")
    np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 2, 3, 6, 9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mixing_to_mono_is_bit_for_bit_numpys_float32_channel_mean(channels, dtype):
    data = np.random.default_rng(channels).uniform(-1.0, 1.0, (48_001, channels)).astype(dtype)
    expected = data.mean(axis=1, dtype=np.float32)
    got = audio.to_mono(data)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.array_equal(got.view(np.int32), expected.view(np.int32))
    assert np.array_equal(
        audio.to_mono(data[::2]).view(np.int32), data[::2].mean(axis=1, dtype=np.float32).view(np.int32)
    )
