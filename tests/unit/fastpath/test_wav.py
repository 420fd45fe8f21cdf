"""PCM16 WAV samples read with numpy are libsndfile's, bit for bit, or not read at all."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

import serving.limits
from serving.limits import UploadLimits, decode_upload
from spira_core import audio as A
from spira_core.wav import pcm16_samples, wav_layout


def _sf_wav(ints: np.ndarray, rate: int, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, ints, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _hand_wav(ints: np.ndarray, rate: int, extra_chunks: bytes = b"", format_tag: int = 1) -> bytes:
    """A WAV laid out by hand: a fmt chunk, then `extra_chunks`, then the data chunk."""
    channels = ints.shape[1]
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, rate * 2 * channels, 2 * channels, 16)
    payload = ints.astype("<i2").tobytes()
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + extra_chunks
        + b"data"
        + struct.pack("<I", len(payload))
        + payload
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _ints(frames: int, channels: int, seed: int = 0) -> np.ndarray:
    ints = np.random.default_rng(seed).integers(-32768, 32768, size=(frames, channels), dtype=np.int16)
    ints[:2] = [[-32768] * channels, [32767] * channels]  # both extremes
    return ints


def _numpy_read(data: bytes) -> np.ndarray | None:
    layout = wav_layout(data)
    return pcm16_samples(data, layout) if layout is not None and layout.pcm16 else None


@pytest.mark.parametrize(
    ("channels", "rate", "fmt"),
    [(1, 48_000, "WAV"), (2, 44_100, "WAV"), (1, 16_000, "WAV"), (2, 48_000, "WAVEX")],
)
def test_pcm16_samples_and_header_are_libsndfiles_bit_for_bit(channels: int, rate: int, fmt: str) -> None:
    data = _sf_wav(_ints(rate // 3, channels), rate, fmt=fmt)
    layout = wav_layout(data)
    info = sf.info(io.BytesIO(data))
    assert (layout.sample_rate, layout.channels, layout.frames) == (
        info.samplerate,
        info.channels,
        info.frames,
    )
    ours = _numpy_read(data)
    theirs, _ = A.decode(data)
    assert ours is not None
    assert ours.dtype == theirs.dtype == np.float32
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)


def test_chunks_before_the_data_and_odd_sized_chunks_are_skipped_like_libsndfile_skips_them() -> None:
    ints = _ints(8000, 1, seed=1)
    odd = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\0"  # odd size, padded to even
    data = _hand_wav(ints, 16_000, extra_chunks=odd + b"junk" + struct.pack("<I", 4) + b"abcd")
    ours = _numpy_read(data)
    assert ours is not None
    assert np.array_equal(ours, A.decode(data)[0])


def test_a_truncated_pcm16_wav_reads_what_libsndfile_reads_and_promises_more() -> None:
    data = _sf_wav(_ints(16_000, 2, seed=2), 16_000)[:-1001]  # cut mid-frame
    ours = _numpy_read(data)
    theirs, _ = A.decode(data)
    assert ours is not None and np.array_equal(ours, theirs)
    assert wav_layout(data).declared_frames == 16_000


@pytest.mark.parametrize("subtype", ["PCM_24", "PCM_32", "FLOAT", "PCM_U8"])
def test_other_wav_subtypes_are_left_to_libsndfile(subtype: str) -> None:
    data = _sf_wav(np.zeros((1000, 1), dtype=np.float32) + 0.25, 16_000, subtype)
    assert _numpy_read(data) is None


def test_a_wav_that_is_not_plain_pcm16_is_left_to_libsndfile() -> None:
    ints = _ints(4000, 1)
    extensible_float = _sf_wav(np.zeros((1000, 1), np.float32) + 0.25, 16_000, "FLOAT", fmt="WAVEX")
    unsized = bytearray(_hand_wav(ints, 16_000))
    unsized[40:44] = struct.pack("<I", 0xFFFFFFFF)  # a streamed WAV's data size
    empty_data = _hand_wav(ints[:0], 16_000)
    for data in (extensible_float, bytes(unsized), empty_data, _hand_wav(ints, 16_000, format_tag=3)):
        assert not wav_layout(data).pcm16
    assert wav_layout(b"OggS" + bytes(100)) is None
    with pytest.raises(ValueError, match="libsndfile"):
        pcm16_samples(extensible_float, wav_layout(extensible_float))


def test_a_pcm16_upload_is_decoded_once_without_libsndfile_and_others_by_one_libsndfile_open(
    monkeypatch,
) -> None:
    limits = UploadLimits()
    pcm16 = _sf_wav(_ints(48_000 * 2, 1, seed=3), 48_000)
    flac = _sf_wav(_ints(48_000 * 2, 1, seed=3), 48_000, fmt="FLAC")
    opened: list[int] = []
    real_open = A.open_audio

    def counting_open(source):
        opened.append(len(source))
        return real_open(source)

    monkeypatch.setattr(serving.limits.A, "open_audio", counting_open)
    monkeypatch.setattr(sf, "info", lambda *a, **k: pytest.fail("the header is read once, by the decoder"))
    fast = decode_upload(pcm16, limits)
    assert opened == []
    slow = decode_upload(flac, limits)
    assert opened == [len(flac)]
    assert fast.sample_rate == slow.sample_rate == 48_000
    assert np.array_equal(fast.samples, A.decode(pcm16)[0])
    assert np.array_equal(fast.samples, slow.samples)  # FLAC is lossless: the same 16-bit samples
