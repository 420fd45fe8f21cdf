"""MFCC against an independent numpy implementation of torchaudio.transforms.MFCC's definition."""

from __future__ import annotations

import numpy as np
import pytest

from spira_core import features as F
from spira_core.params import FeatureParams


def reference_mfcc(wav: np.ndarray, p: FeatureParams) -> np.ndarray:
    """Written from torchaudio's documented defaults, sharing no code with spira_core.features."""
    wav = wav.astype(np.float64)
    pad = p.n_fft // 2
    padded = np.pad(wav, (pad, pad), mode="reflect")
    n = np.arange(p.win_length)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / p.win_length)  # periodic Hann
    window = np.zeros(p.n_fft)
    left = (p.n_fft - p.win_length) // 2
    window[left : left + p.win_length] = hann
    n_frames = 1 + (len(padded) - p.n_fft) // p.hop_length
    frames = np.stack([padded[i * p.hop_length : i * p.hop_length + p.n_fft] for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # [T, n_freqs]

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    n_freqs = p.n_fft // 2 + 1
    all_freqs = np.linspace(0, p.sample_rate // 2, n_freqs)
    f_pts = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(p.sample_rate / 2), p.n_mels + 2))
    f_diff = np.diff(f_pts)
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))  # [n_freqs, n_mels]
    mel = power @ fb  # [T, n_mels]
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    k = np.arange(p.n_mfcc)[None, :]
    m = np.arange(p.n_mels)[:, None]
    dct = np.cos(np.pi / p.n_mels * (m + 0.5) * k)
    dct[:, 0] *= 1.0 / np.sqrt(2.0)
    dct *= np.sqrt(2.0 / p.n_mels)
    return db @ dct  # [T, n_mfcc]


def _voice_like(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 10 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(h * phase) / h for h in range(1, 12))
    return (0.3 * voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_mfcc_has_one_frame_per_hop_plus_one_and_forty_coefficients():
    p = FeatureParams()
    feats = F.mfcc(_voice_like(4.0), p)
    assert feats.shape == (4 * 16000 // 160 + 1, 40) == (p.input_frames, p.n_mfcc)
    assert feats.dtype == np.float32
    assert F.n_frames(4 * 16000, p) == feats.shape[0]


@pytest.mark.parametrize("seconds", [0.7, 2.3])
def test_mfcc_matches_an_independent_numpy_reference_of_torchaudio_semantics(seconds):
    p = FeatureParams()
    wav = _voice_like(seconds, seed=int(seconds * 10))
    ours = F.mfcc(wav, p)
    ref = reference_mfcc(wav, p)
    assert ours.shape == ref.shape
    # float32 STFT against float64: agreement to a small fraction of the coefficients' range
    scale = np.abs(ref).max()
    assert np.max(np.abs(ours - ref)) < 1e-3 * scale


def test_top_db_floors_the_mel_spectrogram_80_db_below_its_peak():
    p = FeatureParams()
    wav = np.zeros(16000, dtype=np.float32)
    wav[8000:8400] = np.sin(np.arange(400) * 0.3)  # a short burst in silence
    db = F.mel_spectrogram_db(wav, p)
    assert db.min() == pytest.approx(db.max() - 80.0, abs=1e-3)


def test_clips_shorter_than_half_an_fft_are_zero_extended_not_refused():
    p = FeatureParams()
    feats = F.mfcc(np.full(100, 0.1, dtype=np.float32), p)
    assert feats.shape[1] == 40 and feats.shape[0] >= 1
    assert np.isfinite(feats).all()


def test_mfcc_agrees_with_librosa_configured_like_torchaudio():
    import librosa

    p = FeatureParams()
    wav = _voice_like(1.5, seed=3)
    mel = librosa.feature.melspectrogram(
        y=wav.astype(np.float64),
        sr=16000,
        n_fft=1200,
        hop_length=160,
        win_length=400,
        window="hann",
        center=True,
        pad_mode="reflect",
        power=2.0,
        n_mels=40,
        htk=True,
        norm=None,
    )
    db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)
    ref = librosa.feature.mfcc(S=db, n_mfcc=40, dct_type=2, norm="ortho").T
    ours = F.mfcc(wav, p)
    assert np.max(np.abs(ours - ref)) < 1e-3 * np.abs(ref).max()


def test_mel_filters_match_librosas_htk_filters_without_normalisation():
    import librosa

    ours = F.mel_basis(16000, 1200, 40, 0.0, None)
    ref = librosa.filters.mel(sr=16000, n_fft=1200, n_mels=40, htk=True, norm=None)
    np.testing.assert_allclose(ours, ref, atol=1e-6)
