"""The serving HTTP contract, checked against a live server (the same tests for every image by digest).

HTTP only: this module imports no application code, so it runs unchanged against a container. Every
upload carries the client's token (tests/contract/client.py).
"""

from __future__ import annotations

import io
import json
import math
import urllib.error
import urllib.request
import uuid

import numpy as np
import pytest
import soundfile as sf

from tests.contract.client import auth_headers

ANSWER_FIELDS = {
    "probability",
    "label",
    "threshold",
    "model_version",
    "windows",
    "duration_s",
    "sample_rate_in",
}


def _clip(seconds: float, rate: int, channels: int = 1, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    sig = sum(np.sin(2 * np.pi * 130 * k * t) / k for k in range(1, 6)) * 0.2
    sig = sig + 0.01 * np.random.default_rng(1).standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(
        buf, np.repeat(sig[:, None], channels, axis=1).astype(np.float32), rate, format=fmt, subtype=subtype
    )
    return buf.getvalue()


def _post(
    url: str,
    fields: list[tuple[str, str, bytes]],
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict]:
    """POST a multipart body as the session's client (its token; `headers` add to or replace it)."""
    boundary = uuid.uuid4().hex
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{fname}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
            for name, fname, data in fields
        )
        + f"--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": content_type or f"multipart/form-data; boundary={boundary}",
            **auth_headers(),
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_server_is_live_and_ready(contract_url: str) -> None:
    assert _get(f"{contract_url}/livez")[0] == 200
    assert _get(f"{contract_url}/readyz")[0] == 200


@pytest.mark.parametrize(("rate", "channels"), [(16_000, 1), (44_100, 2), (48_000, 1)])
def test_a_recording_gets_a_complete_answer(
    contract_url: str, expected_model_version, rate, channels
) -> None:
    status, body = _post(f"{contract_url}/predict", [("audio", "a.wav", _clip(5.0, rate, channels))])
    assert status == 200, body
    assert set(body) == ANSWER_FIELDS
    assert 0.0 <= body["probability"] <= 1.0 and math.isfinite(body["probability"])
    assert body["label"] == ("patient" if body["probability"] >= body["threshold"] else "control")
    assert body["sample_rate_in"] == rate and body["windows"] == 2
    assert abs(body["duration_s"] - 5.0) < 1e-3
    if expected_model_version:
        assert body["model_version"] == expected_model_version


def test_flac_uploads_are_accepted(contract_url: str) -> None:
    status, body = _post(f"{contract_url}/predict", [("audio", "a.flac", _clip(4.5, 48_000, fmt="FLAC"))])
    assert status == 200, body


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ([("audio", "e.wav", b"")], 400, "empty_upload"),
        ([("audio", "n.wav", b"definitely not audio" * 20)], 415, "unsupported_audio"),
        ([("file", "a.wav", b"RIFF")], 400, "missing_audio"),
    ],
)
def test_bad_uploads_are_json_4xx(contract_url: str, fields, status, code) -> None:
    got_status, body = _post(f"{contract_url}/predict", fields)
    assert (got_status, body.get("error")) == (status, code)
    assert set(body) == {"error", "detail"}


def test_silence_and_too_short_clips_are_422(contract_url: str) -> None:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(48_000 * 3, dtype=np.int16), 48_000, format="WAV", subtype="PCM_16")
    assert _post(f"{contract_url}/predict", [("audio", "s.wav", buf.getvalue())])[1]["error"] == "silent"
    assert (
        _post(f"{contract_url}/predict", [("audio", "t.wav", _clip(0.4, 16_000))])[1]["error"] == "too_short"
    )


def test_metrics_expose_our_counters(contract_url: str) -> None:
    _post(f"{contract_url}/predict", [("audio", "a.wav", _clip(4.0, 16_000))])
    status, text = _get(f"{contract_url}/metrics")
    assert status == 200
    for name in (
        "spira_predictions_total",
        "spira_rejected_uploads_total",
        "spira_audio_seconds_total",
        "spira_secret_version",
    ):
        assert name.encode() in text
