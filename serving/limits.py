"""Upload rules, checked before and after decoding. Every rejection is a 4xx with a code and a reason.

Pure: takes bytes and numbers, returns facts or raises `Rejected`; no I/O beyond reading the bytes given.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from spira_core import audio as A
from spira_core.fastpath.wav import WavLayout, pcm16_samples, wav_layout


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 16 * 1024 * 1024
    max_duration_s: float = 60.0
    # Clips shorter than one window are zero-padded to it, exactly as training pads them (SPIRA's real
    # recordings start at 2.7 s, below the 4 s window); below this floor there is nothing to judge.
    min_duration_s: float = 1.0
    min_sample_rate: int = 8_000
    max_sample_rate: int = 192_000
    max_channels: int = 2
    # Below this peak the clip carries no voice (PCM16 quantisation noise is ~3e-5).
    silence_peak: float = 1e-3


class Rejected(Exception):
    """An upload that must be answered 4xx: `status`, a stable `code` and a human `detail`."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class AudioHeader:
    sample_rate: int
    channels: int
    frames: int  # what the container promises (a truncated WAV promises more than it holds)
    format: str
    subtype: str = ""
    readable_frames: int = 0  # what libsndfile reads from these bytes
    wav: WavLayout | None = None  # the RIFF chunks, walked once here and reused by `decode`

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def check_size(n_bytes: int, limits: UploadLimits) -> None:
    if n_bytes == 0:
        raise Rejected(400, "empty_upload", "the audio file is empty")
    if n_bytes > limits.max_bytes:
        raise Rejected(413, "too_large", f"upload of {n_bytes} bytes exceeds the limit of {limits.max_bytes}")


def read_header(data: bytes, limits: UploadLimits) -> AudioHeader:
    """Read the container header only, and enforce the limits before any sample is decoded."""
    check_size(len(data), limits)
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise Rejected(415, "unsupported_audio", "not a WAV, FLAC or OGG file soundfile can read") from exc
    # libsndfile quietly shortens a truncated WAV, so the chunk sizes are read too
    wav = wav_layout(data)
    declared = wav.declared_frames if wav is not None else None
    frames = max(int(info.frames), declared or 0)  # a truncated WAV still promises its full length
    header = AudioHeader(
        int(info.samplerate),
        int(info.channels),
        frames,
        str(info.format),
        str(info.subtype),
        int(info.frames),
        wav,
    )
    if header.channels < 1 or header.channels > limits.max_channels:
        raise Rejected(
            422, "bad_channels", f"{header.channels} channels; 1 to {limits.max_channels} accepted"
        )
    if not limits.min_sample_rate <= header.sample_rate <= limits.max_sample_rate:
        raise Rejected(
            422,
            "bad_sample_rate",
            f"{header.sample_rate} Hz is outside {limits.min_sample_rate}–{limits.max_sample_rate} Hz",
        )
    if header.frames <= 0:
        raise Rejected(422, "no_samples", "the file holds no audio samples")
    if header.duration_s < limits.min_duration_s:
        raise Rejected(
            422,
            "too_short",
            f"{header.duration_s:.2f} s is shorter than the minimum of {limits.min_duration_s:.1f} s",
        )
    if header.duration_s > limits.max_duration_s:
        raise Rejected(
            413, "too_long", f"{header.duration_s:.1f} s exceeds the limit of {limits.max_duration_s:.0f} s"
        )
    return header


def decode(data: bytes, header: AudioHeader, limits: UploadLimits) -> tuple[np.ndarray, int]:
    """Decode to float32 [frames, channels]; truncated, NaN/Inf and silent audio are rejected."""
    # PCM16 WAV, what phones record: the same values as libsndfile's, without its conversion loop
    samples = (
        pcm16_samples(data, header.wav, header.channels, header.readable_frames)
        if header.subtype == "PCM_16"
        else None
    )
    if samples is not None:
        return _checked(samples, header.sample_rate, header, limits)
    try:
        samples, rate = A.decode(data)
    except A.NonFiniteAudioError as exc:
        raise Rejected(422, "non_finite", "the audio contains NaN or infinite samples") from exc
    except A.AudioError as exc:
        raise Rejected(422, "undecodable", "the audio could not be decoded (truncated or corrupt)") from exc
    return _checked(samples, rate, header, limits)


def _checked(
    samples: np.ndarray, rate: int, header: AudioHeader, limits: UploadLimits
) -> tuple[np.ndarray, int]:
    # A header that promises more frames than the data holds is a truncated upload.
    if samples.shape[0] < header.frames * 0.99:
        raise Rejected(
            422, "truncated", f"the file promises {header.frames} frames but holds {samples.shape[0]}"
        )
    if float(np.max(np.abs(samples))) < limits.silence_peak:
        raise Rejected(422, "silent", "the recording is silent")
    return samples, rate
