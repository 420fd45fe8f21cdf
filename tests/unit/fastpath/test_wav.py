"""PCM16 WAV samples read with numpy are libsndfile's, bit for bit, or not read at all."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from serving.limits import UploadLimits, decode, read_header
from spira_core import audio as A
from spira_core.fastpath.wav import pcm16_samples, wav_layout


def _sf_wav(ints: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, ints, rate, format="WAV", subtype=subtype)
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
    info = sf.info(io.BytesIO(data))
    return pcm16_samples(data, wav_layout(data), info.channels, info.frames)


@pytest.mark.parametrize(("channels", "rate"), [(1, 48_000), (2, 44_100), (1, 16_000)])
def test_pcm16_samples_are_libsndfiles_bit_for_bit(channels: int, rate: int) -> None:
    data = _sf_wav(_ints(rate // 3, channels), rate)
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


def test_a_layout_that_disagrees_with_libsndfile_is_left_to_it() -> None:
    data = _sf_wav(_ints(4000, 2), 16_000)
    layout = wav_layout(data)
    assert pcm16_samples(data, layout, 1, 4000) is None  # channel count differs
    assert pcm16_samples(data, layout, 2, 3999) is None  # frame count differs
    assert pcm16_samples(data, None, 2, 4000) is None
    assert wav_layout(b"OggS" + bytes(100)) is None


def test_the_upload_decode_gives_the_same_samples_with_and_without_the_numpy_path() -> None:
    limits = UploadLimits()
    data = _sf_wav(_ints(48_000 * 2, 1, seed=3), 48_000)
    header = read_header(data, limits)
    assert header.subtype == "PCM_16" and header.wav is not None
    fast, rate = decode(data, header, limits)
    slow, slow_rate = decode(
        data, type(header)(header.sample_rate, header.channels, header.frames, header.format), limits
    )  # no layout: libsndfile decodes
    assert rate == slow_rate == 48_000
    assert np.array_equal(fast, slow)
