"""The worker's lean object-store read (spira_core.objects.SignedGet) signs exactly as botocore does and
refuses a body whose CRC32 is not the store's, and a job state serialises to the same bytes without
dataclasses.asdict."""

from __future__ import annotations

import base64
import datetime
import json
import zlib
from dataclasses import asdict
from urllib.parse import quote

import botocore.auth
import pytest
import urllib3
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from spira_core.objects import ObjectStoreError, SignedGet, sigv4_get_headers, sigv4_signing_key
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


class StoreAnswering(urllib3.HTTPConnectionPool):
    """The object store's connection pool, answering every request with one body and its headers."""

    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        super().__init__("127.0.0.1", 8333)
        self.body, self.headers = body, headers

    def urlopen(self, method, url, body=None, headers=None, **kwargs) -> urllib3.HTTPResponse:
        return urllib3.HTTPResponse(body=self.body, headers=self.headers, status=200, preload_content=True)


def store_crc32(data: bytes) -> str:
    """`x-amz-checksum-crc32` as S3 sends it: the big-endian CRC32 in base64 (here from the system zlib)."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


@pytest.mark.parametrize("size", [1, 4095, 640_000])
def test_a_read_returns_the_body_whose_crc32_is_the_stores_and_refuses_one_changed_in_transit(size) -> None:
    body = bytes(i * 7 % 251 for i in range(size))
    reader = SignedGet("http://127.0.0.1:8333", "AKIDEXAMPLE", "secret")
    reader.pool = StoreAnswering(body, {"x-amz-checksum-crc32": store_crc32(body)})
    assert reader.get("spira-local-archive", "recordings/ab/ab01") == body

    changed = body[:-1] + bytes([body[-1] ^ 1])
    reader.pool = StoreAnswering(changed, {"x-amz-checksum-crc32": store_crc32(body)})
    with pytest.raises(ObjectStoreError, match="CRC32"):
        reader.get("spira-local-archive", "recordings/ab/ab01")


def test_a_multipart_objects_composite_checksum_is_not_taken_for_the_bodys_crc32() -> None:
    body = b"RIFF" + bytes(1000)
    reader = SignedGet("http://127.0.0.1:8333", "AKIDEXAMPLE", "secret")
    reader.pool = StoreAnswering(body, {"x-amz-checksum-crc32": "AAAAAA==-3"})
    assert reader.get("spira-local-archive", "recordings/ab/ab01") == body
