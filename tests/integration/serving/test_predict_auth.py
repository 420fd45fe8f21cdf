"""Clients of the real `bentoml serve` present a token from the stack's Vault (its identity OIDC provider):
without one, or with a forged, expired or foreign one, /predict answers 401 before it reads the body;
with the gate's or a hospital's (AppRole) token it answers 200; the probes' endpoints need none."""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import time
import urllib.parse
from pathlib import Path

import jwt
import psutil
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from infra.vault import clients
from spira.stack import StackInfo
from spira.stack.predict_clients import client_env, issue_hospital_secret_id
from spira_core.predict_credential import PredictCredential
from tests.contract.test_http_contract import _clip, _get, _post
from tests.fixtures.model import ServedModel

pytestmark = pytest.mark.integration

DECLARED = 8 * 1024 * 1024  # within the upload limit: only the token stops it


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _raw_upload(url: str, headers: dict[str, str], send_bytes: int) -> tuple[str, int]:
    """Declare a DECLARED-byte multipart upload, send `send_bytes` of it, then wait for the answer: the
    status line and how many body bytes had been sent when it came."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(
            f"POST /predict HTTP/1.1\r\nHost: {parts.hostname}\r\nContent-Length: {DECLARED}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\n{head}\r\n".encode()
        )
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # answered and closed already
            sock.sendall(b"\0" * send_bytes)
        answer = sock.recv(65536).decode(errors="replace")
    return answer.split("\r\n", 1)[0], send_bytes


def _tree_rss(pid: int) -> int:
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


@pytest.fixture(scope="module")
def gate(local_stack: StackInfo) -> PredictCredential:
    return PredictCredential.from_env(client_env(local_stack, "gate"))


def _extra_role(stack: StackInfo, name: str, key: str, audience: str, ttl_s: int) -> PredictCredential:
    """As root: an identity token role outside the layout (a test's), and a login role that may read it."""
    root = stack.vault_client()
    root.adapter.post(
        f"/v1/identity/oidc/role/{name}", json={"key": key, "client_id": audience, "ttl": ttl_s}
    )
    root.sys.create_or_update_policy(
        name=name, policy=f'path "identity/oidc/token/{name}" {{ capabilities = ["read"] }}'
    )
    subject = f"test:{name}"
    root.adapter.post(
        f"/v1/auth/jwt/role/{name}",
        json={
            "role_type": "jwt",
            "bound_audiences": ["vault"],
            "user_claim": "sub",
            "bound_subject": subject,
            "token_policies": [name],
        },
    )
    env = {**client_env(stack, "gate"), "VAULT_ROLE": name, "VAULT_JWT_SUBJECT": subject}
    return PredictCredential.from_env(env)


def test_a_valid_token_gets_an_answer_and_the_probes_need_none(
    served_model: ServedModel, gate: PredictCredential
) -> None:
    clip = [("audio", "a.wav", _clip(4.0, 16_000))]
    assert _post(f"{served_model.url}/predict", clip, headers=gate.headers())[0] == 200
    assert _claims(gate.token())[clients.CLIENT_CLAIM] == "gate"
    for path in ("/livez", "/readyz", "/metrics", "/info"):
        assert _get(f"{served_model.url}{path}")[0] == 200, path
    code, body = _post(f"{served_model.url}/predict", clip, headers={"Authorization": ""})
    assert (code, body["error"]) == (401, "missing_credential")
    assert (
        'spira_rejected_uploads_total{reason="missing_credential"}'
        in _get(f"{served_model.url}/metrics")[1].decode()
    )


def test_a_hospital_with_its_own_approle_secret_id_gets_an_answer(
    served_model: ServedModel, local_stack: StackInfo, tmp_path: Path
) -> None:
    env = issue_hospital_secret_id(local_stack, "hospital-das-clinicas", tmp_path / "hospital" / "secret-id")
    hospital = PredictCredential.from_env(env)
    assert _claims(hospital.token())[clients.CLIENT_CLAIM] == "hospital"
    status, answer = _post(
        f"{served_model.url}/predict", [("audio", "a.wav", _clip(4.0, 16_000))], headers=hospital.headers()
    )
    assert status == 200, answer


def test_no_token_is_refused_before_the_body_is_read_and_memory_does_not_grow(
    served_model: ServedModel,
) -> None:
    before = _tree_rss(served_model.pid)
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda _: _raw_upload(served_model.url, {}, 64 * 1024), range(32)))
    after = _tree_rss(served_model.pid)
    # each client sent 64 KiB of its 8 MiB and was answered: the server did not wait for the body
    assert all(status.startswith("HTTP/1.1 401") for status, _ in answers), answers
    # 32 uploads of 8 MiB read into memory would be 256 MiB; refused unread, nothing of them is held
    assert after - before < 64 * 1024 * 1024, (before, after)


def test_a_forged_token_is_refused(served_model: ServedModel, gate: PredictCredential) -> None:
    real = gate.token()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        _claims(real), other, algorithm="RS256", headers={"kid": jwt.get_unverified_header(real)["kid"]}
    )
    status, _ = _raw_upload(served_model.url, {"Authorization": f"Bearer {forged}"}, 1024)
    assert status.startswith("HTTP/1.1 401")
    code, body = _post(
        f"{served_model.url}/predict",
        [("audio", "a.wav", b"RIFF")],
        headers={"Authorization": f"Bearer {forged}"},
    )
    assert (code, body["error"]) == (401, "invalid_credential")


def test_an_expired_token_is_refused(served_model: ServedModel, local_stack: StackInfo) -> None:
    short = _extra_role(
        local_stack, "spira-local-test-expiring", clients.key_name("local"), clients.PREDICT_AUDIENCE, 1
    )
    token = short.token()
    assert (
        _post(
            f"{served_model.url}/predict",
            [("audio", "a.wav", b"RIFF")],
            headers={"Authorization": f"Bearer {token}"},
        )[1]["error"]
        != "expired_credential"
    )
    time.sleep(max(0.0, _claims(token)["exp"] + 5 + 1 - time.time()))  # past the expiry and serving's leeway
    code, body = _post(
        f"{served_model.url}/predict",
        [("audio", "a.wav", b"RIFF")],
        headers={"Authorization": f"Bearer {token}"},
    )
    assert (code, body["error"]) == (401, "expired_credential")


def test_a_token_for_another_audience_is_refused(served_model: ServedModel, local_stack: StackInfo) -> None:
    root = local_stack.vault_client()
    key = "spira-local-test-other"
    root.adapter.post(
        f"/v1/identity/oidc/key/{key}", json={"algorithm": "RS256", "allowed_client_ids": ["another-service"]}
    )
    foreign = _extra_role(local_stack, key, key, "another-service", 600)
    headers = {"Authorization": f"Bearer {foreign.token()}"}
    # Vault publishes the new key; serving fetches it in the background once it sees an unknown key id
    deadline, body = time.monotonic() + 30, {}
    while time.monotonic() < deadline:
        code, body = _post(f"{served_model.url}/predict", [("audio", "a.wav", b"RIFF")], headers=headers)
        assert code == 401
        if body["error"] == "wrong_audience":
            break
        time.sleep(1)
    assert body["error"] == "wrong_audience", body
