"""MFCC with the semantics of torchaudio.transforms.MFCC as SPIRA configured it, without torchaudio.

SPIRA called `torchaudio.transforms.MFCC(sample_rate, n_mfcc, log_mels=False, melkwargs={n_fft, win_length,
hop_length, n_mels})`, whose defaults make the definition:

1. power spectrogram: periodic Hann window of `win_length` zero-padded to `n_fft` (centred), centred frames
   (reflect padding of n_fft // 2), |STFT|²;
2. mel filterbank: HTK mel scale, triangular filters, no area normalisation, f_min 0, f_max sr / 2;
3. AmplitudeToDB("power", top_db=80): 10·log10(max(x, 1e-10)), then floored at (max over the whole
   mel spectrogram − 80 dB);
4. DCT-II with orthonormal scaling, keeping the first n_mfcc coefficients.

    feats = mfcc(wav, params)   # float32 [frames, n_mfcc]; frames = len(wav) // hop + 1
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import librosa
import numpy as np
import scipy.fft

from spira_core.params import FeatureParams

AMIN = 1e-10  # torchaudio's AmplitudeToDB floor before the log


@lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float | None) -> np.ndarray:
    fmax = float(sample_rate) / 2.0 if f_max is None else float(f_max)
    # htk=True, norm=None: the same triangles torchaudio's melscale_fbanks(mel_scale="htk", norm=None) builds
    basis = librosa.filters.mel(
        sr=sample_rate,
        n_fft=n_fft,
        n_mels=n_mels,
        fmin=f_min,
        fmax=fmax,
        htk=True,
        norm=None,
        dtype=np.float32,
    )
    basis.setflags(write=False)
    return basis  # [n_mels, n_fft // 2 + 1]


def power_spectrogram(wav: np.ndarray, params: FeatureParams) -> np.ndarray:
    """|STFT|² as float32 [n_fft // 2 + 1, frames]."""
    wav = np.asarray(wav, dtype=np.float32)
    # reflect padding needs more than n_fft // 2 samples; shorter clips are zero-extended first
    minimum = params.n_fft // 2 + 1
    if wav.shape[-1] < minimum:
        wav = np.pad(wav, (0, minimum - wav.shape[-1]))
    with warnings.catch_warnings():
        # librosa warns when n_fft exceeds a (zero-extended) very short clip; the result is still defined
        warnings.simplefilter("ignore", UserWarning)
        spec = librosa.stft(
            wav,
            n_fft=params.n_fft,
            hop_length=params.hop_length,
            win_length=params.win_length,
            window="hann",  # scipy's periodic Hann, like torch.hann_window's default
            center=True,
            pad_mode="reflect",  # torchaudio's default (librosa's own default is "constant")
        )
    return (np.abs(spec) ** 2).astype(np.float32)


def mel_spectrogram_db(wav: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Mel power in dB with the top_db floor: float32 [n_mels, frames]."""
    basis = _mel_basis(params.sample_rate, params.n_fft, params.n_mels, params.f_min, params.f_max)
    mel = basis @ power_spectrogram(wav, params)
    db = 10.0 * np.log10(np.maximum(mel, AMIN))
    if params.top_db is not None:
        db = np.maximum(db, db.max() - params.top_db)
    return db.astype(np.float32)


def mfcc(wav: np.ndarray, params: FeatureParams) -> np.ndarray:
    """MFCC frames, time first: float32 [frames, n_mfcc] (the model's [T, features] layout)."""
    db = mel_spectrogram_db(wav, params)
    coeffs = scipy.fft.dct(db, type=2, norm="ortho", axis=0)[: params.n_mfcc]
    return np.ascontiguousarray(coeffs.T, dtype=np.float32)


def n_frames(n_samples: int, params: FeatureParams) -> int:
    """Frames `mfcc` yields for a clip of n_samples (centred STFT)."""
    return max(n_samples, params.n_fft // 2 + 1) // params.hop_length + 1
