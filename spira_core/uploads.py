"""Upload rules, checked before and after decoding, shared by the model server and the intake API. Every
rejection is a 4xx with a code and a reason.

Pure: takes bytes and numbers, returns facts or raises `Rejected`; no I/O beyond reading the bytes given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spira_core import audio as A
from spira_core.wav import pcm16_samples, wav_layout

# Copies of a body alive at once while it is parsed: the body read, the audio part starlette cuts from it,
# and the part's in-memory spool before it spills to disk (measured: counting two let RSS pass the bound)
BODY_COPIES = 3


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
    # Samples (frames × channels) one upload may decode to, checked from the header before decoding and
    # enforced while decoding: a compressed upload may not decode to more than the largest PCM16 upload
    # (max_bytes / 2 samples, 32 MiB of float32). A 42 KB FLAC of 59 s at 192 kHz stereo promised 22.7 M.
    max_decoded_samples: int = 8 * 1024 * 1024
    # Below this peak the clip carries no voice (PCM16 quantisation noise is ~3e-5).
    silence_peak: float = 1e-3
    # Memory for requests in flight (docs/serving.md "Memory bound"): each request is counted at
    # BODY_COPIES times its body from admission to its answer; the budget holds one maximal batch
    # (3 × (16 × 16 MiB + 64 KiB)). A request that cannot be admitted within busy_wait_s is answered 429
    # "busy" with Retry-After (429, as BentoML's own max_concurrency answers).
    max_inflight_bytes: int = 800 * 1024 * 1024
    busy_wait_s: float = 10.0
    retry_after_s: int = 2
    # decodes and feature extractions at once, each holding at most max_decoded_samples float32 samples
    max_concurrent_decodes: int = 4

    @property
    def request_memory_bytes(self) -> int:
        """What requests in flight may hold beyond the idle server (docs/serving.md "Memory bound"): the
        body budget, plus per decode its float32 samples and one derived copy (the mono mix or the
        resampled signal, never larger)."""
        per_decode = 2 * 4 * self.max_decoded_samples
        return self.max_inflight_bytes + self.max_concurrent_decodes * per_decode


class Rejected(Exception):
    """An upload that must be answered 4xx: `status`, a stable `code` and a human `detail`."""

    def __init__(self, status: int, code: str, detail: str, retry_after_s: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after_s = retry_after_s  # for 429 "busy": when to try again


@dataclass(frozen=True)
class AudioHeader:
    sample_rate: int
    channels: int
    frames: int  # what the container promises (a truncated WAV promises more than it holds)

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class DecodedUpload:
    samples: np.ndarray  # float32 [frames, channels]
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate


def check_size(n_bytes: int, limits: UploadLimits) -> None:
    if n_bytes == 0:
        raise Rejected(400, "empty_upload", "the audio file is empty")
    if n_bytes > limits.max_bytes:
        raise Rejected(413, "too_large", f"upload of {n_bytes} bytes exceeds the limit of {limits.max_bytes}")


def decode_upload(data: bytes, limits: UploadLimits) -> DecodedUpload:
    """The header read once and checked before any sample is decoded; then the samples, checked.

    A plain PCM16 WAV (what phones record) is read from one walk of its RIFF chunks, header and samples,
    with numpy; anything else by libsndfile from one open file (the header, then the samples). The chunk
    walk also gives a WAV's declared length, which libsndfile quietly shortens when the upload was cut."""
    check_size(len(data), limits)
    wav = wav_layout(data)
    if wav is not None and wav.pcm16:
        header = AudioHeader(int(wav.sample_rate or 0), int(wav.channels or 0), int(wav.declared_frames or 0))
        check_header(header, limits)
        return _checked(DecodedUpload(pcm16_samples(data, wav), header.sample_rate), header, limits)
    try:
        f = A.open_audio(data)
    except A.AudioError as exc:
        raise Rejected(415, "unsupported_audio", "not a WAV, FLAC or OGG file soundfile can read") from exc
    with f:
        declared = wav.declared_frames if wav is not None else None
        header = AudioHeader(int(f.samplerate), int(f.channels), max(int(f.frames), declared or 0))
        check_header(header, limits)
        try:
            samples = A.read_samples(f, f"<upload of {len(data)} bytes>", max_frames=header.frames)
        except A.NonFiniteAudioError as exc:
            raise Rejected(422, "non_finite", "the audio contains NaN or infinite samples") from exc
        except A.AudioError as exc:
            raise Rejected(
                422, "undecodable", "the audio could not be decoded (truncated or corrupt)"
            ) from exc
    return _checked(DecodedUpload(samples, header.sample_rate), header, limits)


def check_header(header: AudioHeader, limits: UploadLimits) -> None:
    """The limits a header alone decides, before any sample is decoded."""
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
    if header.frames * header.channels > limits.max_decoded_samples:
        raise Rejected(
            413,
            "too_many_samples",
            f"{header.frames} frames × {header.channels} channels exceed the limit of "
            f"{limits.max_decoded_samples} decoded samples",
        )


def _checked(upload: DecodedUpload, header: AudioHeader, limits: UploadLimits) -> DecodedUpload:
    # A header that promises more frames than the data holds is a truncated upload.
    if upload.samples.shape[0] < header.frames * 0.99:
        raise Rejected(
            422, "truncated", f"the file promises {header.frames} frames but holds {upload.samples.shape[0]}"
        )
    if float(np.max(np.abs(upload.samples))) < limits.silence_peak:
        raise Rejected(422, "silent", "the recording is silent")
    return upload
