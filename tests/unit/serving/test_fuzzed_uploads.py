"""Fuzz: at least 500 generated malformed uploads are all answered 4xx, and the app keeps serving."""

from __future__ import annotations

import io
import struct

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from serving.app import create_app
from serving.batching import Batching
from serving.runtime import ServingRuntime
from tests.fakes.serving import RecordingMetrics, fake_predictor, wav_bytes

VALID = wav_bytes(4.0, 16_000)


def _wav_header(rate: int, channels: int, bits: int, data_len: int) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", (36 + data_len) % 2**32)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_len)
    )


def _silent(rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(rate * 2, dtype=np.int16), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


malformed = st.one_of(
    st.binary(min_size=0, max_size=2048),  # random bytes
    st.integers(0, len(VALID) - 1).map(lambda n: VALID[:n]),  # truncations of a valid WAV
    st.tuples(
        st.integers(44, len(VALID) - 1), st.binary(min_size=1, max_size=64)
    ).map(  # corrupted header bytes
        lambda t: VALID[: t[0] % 44] + t[1] + VALID[t[0] % 44 + len(t[1]) :]
    ),
    st.builds(
        lambda r, c, b, n, body: _wav_header(r, c, b, n) + body,  # lying headers
        st.integers(0, 400_000),
        st.integers(0, 9),
        st.sampled_from([8, 16, 24, 32, 0, 7]),
        st.integers(0, 2**32 - 1),
        st.binary(max_size=512),
    ),
    st.sampled_from([8000, 16000, 48000]).map(_silent),  # silence
)


def test_five_hundred_malformed_uploads_are_all_4xx_and_the_app_survives() -> None:
    runtime = ServingRuntime(fake_predictor(0.4, batching=Batching(64, 1.0)), RecordingMetrics())
    statuses: list[int] = []
    with TestClient(create_app(lambda: runtime), raise_server_exceptions=False) as client:

        @settings(max_examples=520, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(payload=malformed)
        def one(payload: bytes) -> None:
            resp = client.post("/predict", files={"audio": ("x.wav", payload, "audio/wav")})
            statuses.append(resp.status_code)
            if resp.status_code == 200:  # a mutation can still be valid audio: then it must be a real answer
                assert 0.0 <= resp.json()["probability"] <= 1.0
            else:
                assert 400 <= resp.status_code < 500, resp.text
                assert set(resp.json()) == {"error", "detail"}

        one()
        assert client.post("/predict", files={"audio": ("ok.wav", VALID)}).status_code == 200
    assert len(statuses) >= 500
    assert sum(400 <= s < 500 for s in statuses) >= 450
