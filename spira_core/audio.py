"""Audio decoding shared by training and serving: any soundfile format → mono float32 at the model's rate.

    wav = load_audio(path_or_bytes, sample_rate=16000)   # 1-D float32 in [-1, 1] (roughly)

Failures raise an `AudioError` subclass that names the problem, so callers can report and skip a file
(training) or answer 4xx (serving) without catching anything broader.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

# soxr's high-quality mode: what librosa.resample(res_type="soxr_hq") calls; used directly because importing
# librosa costs seconds (scipy.signal, numba) in every serving and training process
RESAMPLE_QUALITY = "soxr_hq"


class AudioError(ValueError):
    """Audio that cannot be turned into a waveform."""


class EmptyAudioError(AudioError):
    """The file decodes to zero samples."""


class CorruptAudioError(AudioError):
    """The bytes are not a readable audio file."""


class NonFiniteAudioError(AudioError):
    """The decoded samples contain NaN or infinity."""


def _describe(source: str | Path | bytes) -> str:
    if isinstance(source, bytes | bytearray):
        return f"<{len(source)} bytes>"
    return str(source)


def open_audio(source: str | Path | bytes) -> sf.SoundFile:
    """Open for reading: the header is parsed (rate, channels, frames), no sample is decoded yet."""
    what = _describe(source)
    if isinstance(source, bytes | bytearray):
        if len(source) == 0:
            raise EmptyAudioError(f"{what}: no data")
        handle: io.BytesIO | str = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        if not path.is_file():
            raise CorruptAudioError(f"{what}: no such file")
        if path.stat().st_size == 0:
            raise EmptyAudioError(f"{what}: empty file")
        handle = str(path)
    try:
        return sf.SoundFile(handle)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise CorruptAudioError(f"{what}: not readable audio ({exc})") from exc


def read_samples(f: sf.SoundFile, what: str = "<audio>", max_frames: int = -1) -> np.ndarray:
    """Decode an opened file's samples to float32 [frames, channels]; zero samples, NaN or infinity raise.

    `max_frames` (when not -1) is the most frames decoded, whatever the file turns out to hold: a caller
    that checked the header's frame count passes it, so a file that holds more decodes no more."""
    try:
        data = f.read(frames=max_frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise CorruptAudioError(f"{what}: not readable audio ({exc})") from exc
    if data.shape[0] == 0:
        raise EmptyAudioError(f"{what}: decodes to zero samples")
    if not np.isfinite(data).all():
        raise NonFiniteAudioError(f"{what}: contains NaN or infinite samples")
    return data


def decode(source: str | Path | bytes) -> tuple[np.ndarray, int]:
    """Decode to float32 [frames, channels] and the file's sample rate."""
    with open_audio(source) as f:
        return read_samples(f, _describe(source)), int(f.samplerate)


def to_mono(data: np.ndarray) -> np.ndarray:
    """Mix channels down by averaging (float32); a 1-D input is returned as is.

    Bit for bit `data.mean(axis=1, dtype=np.float32)`, which reduces the short channel axis row by row
    (~6.5 ms for 5.7 s of 48 kHz stereo): here one vectorised pass per channel (0.2 ms). Below 8 channels
    numpy's float32 mean adds the channels left to right and divides by their count, as this does."""
    if data.ndim == 1:
        return data.astype(np.float32, copy=False)
    channels = data.shape[1]
    if not 1 <= channels < 8:
        return data.mean(axis=1, dtype=np.float32)
    data = data.astype(np.float32, copy=False)
    if channels == 1:
        return data[:, 0].copy()
    mono = data[:, 0] + data[:, 1]
    for c in range(2, channels):
        mono += data[:, c]
    mono /= np.float32(channels)
    return mono


def resample(wav: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    if orig_rate == target_rate:
        return wav.astype(np.float32, copy=False)
    out = soxr.resample(wav, orig_rate, target_rate, quality=RESAMPLE_QUALITY)
    return np.ascontiguousarray(out, dtype=np.float32)


def load_audio(source: str | Path | bytes, sample_rate: int = 16000) -> np.ndarray:
    """Decode, mix to mono and resample to `sample_rate`: 1-D float32."""
    data, rate = decode(source)
    wav = resample(to_mono(data), rate, sample_rate)
    if wav.size == 0:
        raise EmptyAudioError(f"{_describe(source)}: too short to resample to {sample_rate} Hz")
    return wav


def duration_s(wav: np.ndarray, sample_rate: int) -> float:
    return float(len(wav)) / float(sample_rate)
