"""The worker's lean object-store read (spira_core.objects.SignedGet) signs exactly as botocore does and
refuses a body whose CRC32 is not the store's, and a job state serialises to the same bytes without
dataclasses.asdict."""

from __future__ import annotations

import base64
import datetime
import http.client
import io
import json
import socket
import zlib
from dataclasses import asdict
from urllib.parse import quote

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from spira_core.objects import (
    ObjectMissing,
    ObjectStoreError,
    SignedGet,
    sigv4_get_headers,
    sigv4_signing_key,
)
from spira_core.queue import DONE, JobState


def test_a_signed_get_carries_the_signature_botocore_computes_for_the_same_request(monkeypatch) -> None:
    when = datetime.datetime(2026, 12, 7, 8, 1, 2)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: when)
    host, bucket, key = "127.0.0.1:8333", "spira-local-archive", "recordings/ab/ab01 weird+name.wav"
    path = f"/{bucket}/{quote(key, safe='/-_.~')}"
    access, secret = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

    request = AWSRequest(method="GET", url=f"http://{host}{path}")
    botocore.auth.S3SigV4Auth(Credentials(access, secret), "s3", "us-east-1").add_auth(request)

    ours = sigv4_get_headers(
        host,
        path,
        access,
        sigv4_signing_key(secret, "20261207", "us-east-1"),
        "us-east-1",
        "20261207T080102Z",
    )
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]
    assert ours["x-amz-content-sha256"] == request.headers["X-Amz-Content-SHA256"]


def test_a_job_state_serialises_to_the_same_bytes_as_its_dataclass_fields() -> None:
    state = JobState(DONE, {"probability": 0.25, "label": "control", "windows": 2}, attempts=3)
    assert state.to_bytes() == json.dumps(asdict(state), sort_keys=True).encode()
    assert JobState.from_bytes(state.to_bytes()) == state


class FakeSocket(socket.socket):
    """A connected socket that answers with canned bytes and records what was sent (as CPython's own
    http.client tests do); `closed_by_store` makes it a kept-alive connection the store has closed."""

    def __init__(self, answer: bytes, closed_by_store: bool = False) -> None:
        super().__init__()
        self.answer, self.closed_by_store, self.sent = answer, closed_by_store, b""

    def sendall(self, data, flags=0) -> None:
        self.sent += bytes(data)

    def makefile(self, mode="r", buffering=None, **kwargs):
        return io.BufferedReader(io.BytesIO(b"" if self.closed_by_store else self.answer))

    def settimeout(self, value) -> None:
        pass


class StoreAnswering(http.client.HTTPConnection):
    """A connection to the object store that answers every request with one status, body and headers."""

    opened = 0

    def __init__(self, body: bytes, headers: dict[str, str], status: int = 200, **socket_options) -> None:
        super().__init__("127.0.0.1", 8333)
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.answer = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body
        self.socket_options = socket_options

    def connect(self) -> None:
        type(self).opened += 1
        self.sock = FakeSocket(self.answer, **self.socket_options)


def reading(connections) -> SignedGet:
    """A SignedGet whose new connections are `connections()`."""
    reader = SignedGet("http://127.0.0.1:8333", "AKIDEXAMPLE", "secret")
    reader.try_delays_s = (0.0, 0.0, 0.0)
    reader._open = connections
    return reader


def store_crc32(data: bytes) -> str:
    """`x-amz-checksum-crc32` as S3 sends it: the big-endian CRC32 in base64 (here from the system zlib)."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


@pytest.mark.parametrize("size", [1, 4095, 640_000])
def test_a_read_returns_the_body_whose_crc32_is_the_stores_and_refuses_one_changed_in_transit(size) -> None:
    body = bytes(i * 7 % 251 for i in range(size))
    reader = reading(lambda: StoreAnswering(body, {"x-amz-checksum-crc32": store_crc32(body)}))
    assert reader.get("spira-local-archive", "recordings/ab/ab01") == body

    changed = body[:-1] + bytes([body[-1] ^ 1])
    reader = reading(lambda: StoreAnswering(changed, {"x-amz-checksum-crc32": store_crc32(body)}))
    with pytest.raises(ObjectStoreError, match="CRC32"):
        reader.get("spira-local-archive", "recordings/ab/ab01")


def test_a_multipart_objects_composite_checksum_is_not_taken_for_the_bodys_crc32() -> None:
    body = b"RIFF" + bytes(1000)
    reader = reading(lambda: StoreAnswering(body, {"x-amz-checksum-crc32": "AAAAAA==-3"}))
    assert reader.get("spira-local-archive", "recordings/ab/ab01") == body


def test_reads_one_after_another_share_one_kept_alive_connection_and_send_the_signed_request() -> None:
    StoreAnswering.opened = 0
    reader = reading(lambda: StoreAnswering(b"RIFF", {}))
    for _ in range(3):
        assert reader.get("spira-local-archive", "recordings/ab/ab01") == b"RIFF"
    assert StoreAnswering.opened == 1
    sent = reader._idle[0].sock.sent.decode()
    assert sent.startswith("GET /spira-local-archive/recordings/ab/ab01 HTTP/1.1\r\n")
    assert "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/" in sent


def test_a_kept_alive_connection_the_store_closed_is_replaced_and_the_read_still_answers() -> None:
    answers = iter([StoreAnswering(b"", {}, closed_by_store=True), StoreAnswering(b"RIFF", {})])
    reader = reading(lambda: next(answers))
    assert reader.get("spira-local-archive", "recordings/ab/ab01") == b"RIFF"


@pytest.mark.parametrize(
    ("status", "error"), [(404, ObjectMissing), (403, ObjectStoreError), (503, ObjectStoreError)]
)
def test_a_refusal_raises_its_error_and_a_server_error_only_after_three_tries(status, error) -> None:
    StoreAnswering.opened = 0
    reader = reading(lambda: StoreAnswering(b"<Error>no</Error>", {"Connection": "close"}, status=status))
    with pytest.raises(error):
        reader.get("spira-local-archive", "recordings/ab/ab01")
    assert StoreAnswering.opened == (3 if status >= 500 else 1)


def test_a_server_error_then_an_answer_is_an_answer() -> None:
    answers = iter([StoreAnswering(b"busy", {}, status=503), StoreAnswering(b"RIFF", {})])
    reader = reading(lambda: next(answers))
    assert reader.get("spira-local-archive", "recordings/ab/ab01") == b"RIFF"
