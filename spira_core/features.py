"""MFCC with the semantics of torchaudio.transforms.MFCC as SPIRA configured it, in numpy (no torchaudio).

SPIRA called `torchaudio.transforms.MFCC(sample_rate, n_mfcc, log_mels=False, melkwargs={n_fft, win_length,
hop_length, n_mels})`, whose defaults make the definition:

1. power spectrogram: periodic Hann window of `win_length` zero-padded to `n_fft` (centred), centred frames
   (reflect padding of n_fft // 2), |STFT|²;
2. mel filterbank: HTK mel scale, triangular filters, no area normalisation, f_min 0, f_max sr / 2;
3. AmplitudeToDB("power", top_db=80): 10·log10(max(x, 1e-10)), then floored at (max over the whole
   mel spectrogram − 80 dB);
4. DCT-II with orthonormal scaling, keeping the first n_mfcc coefficients.

    feats = mfcc(wav, params)   # float32 [frames, n_mfcc]; frames = len(wav) // hop + 1

Everything runs in float64 and only the result is rounded to float32: in float64 this is torchaudio's
definition to ~1e-12 (tests/golden/torchaudio_mfcc.npz, recorded with torchaudio 2.9.1 itself), so the
float32 result is within its own rounding (< 1e-5 for |coefficients| < 256) of real torchaudio. Rounding
the power, the mel product and the dB to float32 on the way cost up to 3.3e-5 there.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft

from spira_core.params import FeatureParams

AMIN = 1e-10  # torchaudio's AmplitudeToDB floor before the log


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)  # HTK


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_basis64(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float | None) -> np.ndarray:
    """Triangular HTK-mel filters without area normalisation: float64 [n_mels, n_fft // 2 + 1].

    The construction of torchaudio's melscale_fbanks(mel_scale="htk", norm=None) (and librosa's
    filters.mel(htk=True, norm=None)): band edges evenly spaced in mel, filter slopes in Hz.
    """
    fmax = float(sample_rate) / 2.0 if f_max is None else float(f_max)
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.float64(f_min)), _hz_to_mel(np.float64(fmax)), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    basis = np.maximum(0.0, np.minimum(lower, upper))
    basis.setflags(write=False)
    return basis


@lru_cache(maxsize=8)
def mel_basis(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float | None) -> np.ndarray:
    """`mel_basis64` rounded to float32 [n_mels, n_fft // 2 + 1] (for float32 products: the fast path)."""
    basis = mel_basis64(sample_rate, n_fft, n_mels, f_min, f_max).astype(np.float32)
    basis.setflags(write=False)
    return basis


@lru_cache(maxsize=8)
def _window(win_length: int, n_fft: int) -> np.ndarray:
    """Periodic Hann (torch.hann_window's default) zero-padded to n_fft, centred as torch.stft does."""
    n = np.arange(win_length)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
    window = np.zeros(n_fft)
    left = (n_fft - win_length) // 2
    window[left : left + win_length] = hann
    window.setflags(write=False)
    return window


def power_spectrogram(wav: np.ndarray, params: FeatureParams) -> np.ndarray:
    """|STFT|² as float64 [n_fft // 2 + 1, frames] (centred frames, reflect padding)."""
    wav = np.asarray(wav, dtype=np.float64).reshape(-1)
    pad = params.n_fft // 2
    # reflect padding needs more than n_fft // 2 samples; shorter clips are zero-extended first
    if wav.size <= pad:
        wav = np.pad(wav, (0, pad + 1 - wav.size))
    padded = np.pad(wav, (pad, pad), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, params.n_fft)[:: params.hop_length]
    spec = np.fft.rfft(frames * _window(params.win_length, params.n_fft), axis=1)
    return (spec.real**2 + spec.imag**2).T


def _mel_db64(wav: np.ndarray, params: FeatureParams) -> np.ndarray:
    basis = mel_basis64(params.sample_rate, params.n_fft, params.n_mels, params.f_min, params.f_max)
    mel = basis @ power_spectrogram(wav, params)
    db = 10.0 * np.log10(np.maximum(mel, AMIN))
    if params.top_db is not None:
        db = np.maximum(db, db.max() - params.top_db)
    return db


def mel_spectrogram_db(wav: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Mel power in dB with the top_db floor: float32 [n_mels, frames]."""
    return _mel_db64(wav, params).astype(np.float32)


def mfcc(wav: np.ndarray, params: FeatureParams) -> np.ndarray:
    """MFCC frames, time first: float32 [frames, n_mfcc] (the model's [T, features] layout)."""
    db = _mel_db64(wav, params)
    coeffs = scipy.fft.dct(db, type=2, norm="ortho", axis=0)[: params.n_mfcc]
    return np.ascontiguousarray(coeffs.T, dtype=np.float32)


def n_frames(n_samples: int, params: FeatureParams) -> int:
    """Frames `mfcc` yields for a clip of n_samples (centred STFT)."""
    return max(n_samples, params.n_fft // 2 + 1) // params.hop_length + 1
