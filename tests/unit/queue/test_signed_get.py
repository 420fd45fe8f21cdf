"""The worker's lean object-store read (spira_core.objects.SignedGet) signs exactly as botocore does, and a
job state serialises to the same bytes without dataclasses.asdict."""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict
from urllib.parse import quote

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from spira_core.objects import sigv4_get_headers, sigv4_signing_key
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
