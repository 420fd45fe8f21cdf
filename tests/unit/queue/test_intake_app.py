"""The intake API over fakes of its ports: 202 and one job per idempotency key, /predict's 4xx for a bad
upload with nothing stored or queued, a queue outage retried within queue_wait_s, else 503."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from starlette.testclient import TestClient

from intake.app import IntakeRuntime, create_app
from spira.queue_local import malformed_upload
from spira_core import client_auth as auth
from tests.fakes.queue import FakeJobQueue, FakeRecordings
from tests.fakes.serving import wav_bytes
from tests.unit.queue.test_worker import NAMES


@pytest.fixture
def intake() -> tuple[TestClient, IntakeRuntime]:
    runtime = IntakeRuntime(FakeJobQueue(), FakeRecordings(), NAMES, queue_wait_s=0.5)
    return TestClient(create_app(lambda: runtime)), runtime


def _post(client: TestClient, data: bytes, key: str | None = None, site: str | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(
        "/v1/recordings",
        files={"audio": ("r.wav", data, "audio/wav")},
        data={"site": site} if site else None,
        headers=headers,
    )


def test_an_upload_is_accepted_with_its_job_and_status_url_and_reads_as_queued(intake) -> None:
    client, runtime = intake
    resp = _post(client, wav_bytes(), key="visit-1", site="hc-sp")
    assert resp.status_code == 202
    body = resp.json()
    assert body["status_url"] == f"/v1/jobs/{body['job_id']}" and body["status"] == "queued"
    assert client.get(body["status_url"]).json() == {"job_id": body["job_id"], "status": "queued"}
    (job_bytes,) = runtime.queue.messages
    assert b'"site": "hc-sp"' in job_bytes
    ((key, stored),) = runtime.recordings.objects.items()
    assert key.startswith("recordings/") and key.endswith(hashlib.sha256(stored).hexdigest())


def test_the_same_idempotency_key_twice_gives_the_same_job_and_one_message(intake) -> None:
    client, runtime = intake
    first = _post(client, wav_bytes(seed=1), key="visit-1").json()
    again = _post(client, wav_bytes(seed=1), key="visit-1").json()
    assert first["job_id"] == again["job_id"] and len(runtime.queue.messages) == 1
    assert runtime.accepted == 1 and runtime.duplicates == 1


def test_without_a_key_the_content_hash_names_the_job(intake) -> None:
    client, runtime = intake
    a, b = _post(client, wav_bytes(seed=2)).json(), _post(client, wav_bytes(seed=2)).json()
    c = _post(client, wav_bytes(seed=3)).json()
    assert a["job_id"] == b["job_id"] != c["job_id"] and len(runtime.queue.messages) == 2


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 400, "empty_upload"),
        (b"%PDF-1.7 not audio at all", 415, "unsupported_audio"),
        (wav_bytes(seconds=0.3), 422, "too_short"),
        (malformed_upload(np.random.default_rng(0), "silent"), 422, "silent"),
        (malformed_upload(np.random.default_rng(0), "truncated"), 422, "truncated"),
        (wav_bytes(channels=3), 422, "bad_channels"),
    ],
)
def test_a_bad_upload_gets_predicts_4xx_and_is_neither_stored_nor_queued(intake, data, status, code) -> None:
    client, runtime = intake
    resp = _post(client, data, key="k")
    assert resp.status_code == status and resp.json()["error"] == code
    assert runtime.queue.messages == [] and runtime.recordings.objects == {} and runtime.queue.states == {}


def test_a_request_that_is_not_multipart_or_has_no_audio_is_refused(intake) -> None:
    client, runtime = intake
    assert (
        client.post("/v1/recordings", content=b"x", headers={"content-type": "audio/wav"}).status_code == 415
    )
    resp = client.post("/v1/recordings", files={"other": ("r.wav", wav_bytes(), "audio/wav")})
    assert resp.status_code == 400 and resp.json()["error"] == "missing_audio"
    assert runtime.queue.messages == []


def test_a_short_queue_outage_is_waited_out_and_a_long_one_is_a_503_the_client_can_retry(intake) -> None:
    client, runtime = intake
    runtime.queue.unavailable = 2
    assert _post(client, wav_bytes(seed=4), key="a").status_code == 202
    runtime.queue.unavailable = 1000
    resp = _post(client, wav_bytes(seed=5), key="b")
    assert (
        resp.status_code == 503
        and resp.json()["error"] == "queue_unavailable"
        and resp.headers["Retry-After"]
    )
    runtime.queue.unavailable = 0
    assert _post(client, wav_bytes(seed=5), key="b").status_code == 202
    assert len(runtime.queue.messages) == 2


def test_an_unknown_job_is_a_404(intake) -> None:
    client, _ = intake
    assert client.get("/v1/jobs/" + "0" * 32).status_code == 404
    assert client.get("/v1/jobs/not-a-job").json()["error"] == "unknown_job"


def test_the_intake_imports_no_torch() -> None:
    code = "import sys, intake.wiring; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.fixture
def guarded() -> tuple[TestClient, IntakeRuntime]:
    from tests.unit.serving.test_client_auth import ISSUER, PUBLIC

    keys = auth.KeySet(lambda: {"issuer": ISSUER, "keys": [PUBLIC]})
    assert keys.refresh()
    runtime = IntakeRuntime(
        FakeJobQueue(), FakeRecordings(), NAMES, queue_wait_s=0.5, verifier=auth.TokenVerifier(keys)
    )
    return TestClient(create_app(lambda: runtime)), runtime


def _bearer(kind: str) -> dict[str, str]:
    from tests.unit.serving.test_client_auth import _token

    return {"Authorization": f"Bearer {_token(**{auth.CLIENT_CLAIM: kind})}"}


def test_an_upload_without_a_token_is_a_401_json_before_its_body_is_read(guarded) -> None:
    _, runtime = guarded
    app, received, sent = create_app(lambda: runtime), [], []

    async def receive():
        received.append(1)
        return {"type": "http.request", "body": wav_bytes(), "more_body": False}

    async def send(message):
        sent.append(message)

    for headers in ([], [(b"authorization", b"Bearer not-a-jwt")]):
        sent.clear()
        scope = {"type": "http", "path": "/v1/recordings", "method": "POST", "headers": headers}
        asyncio.run(app(scope, receive, send))
        assert sent[0]["status"] == 401 and json.loads(sent[1]["body"])["error"].endswith("_credential")
    assert received == [] and runtime.queue.messages == [] and runtime.recordings.objects == {}


def test_a_valid_token_of_another_client_kind_is_a_403_and_a_hospitals_is_accepted(guarded) -> None:
    client, runtime = guarded
    for kind in ("gate", "intake"):
        resp = client.post(
            "/v1/recordings", files={"audio": ("r.wav", wav_bytes(), "audio/wav")}, headers=_bearer(kind)
        )
        assert resp.status_code == 403 and resp.json()["error"] == "forbidden_client"
    assert runtime.queue.messages == [] and runtime.recordings.objects == {}
    ok = client.post(
        "/v1/recordings", files={"audio": ("r.wav", wav_bytes(), "audio/wav")}, headers=_bearer("hospital")
    )
    assert ok.status_code == 202 and len(runtime.queue.messages) == 1
    assert client.get(ok.json()["status_url"]).status_code == 401  # a job's status needs a token too
    assert client.get(ok.json()["status_url"], headers=_bearer("hospital")).json()["status"] == "queued"
    assert client.get("/readyz").status_code == 200 and client.get("/livez").status_code == 200
