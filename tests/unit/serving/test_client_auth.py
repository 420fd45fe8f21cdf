"""The check of clients' tokens (spira_core/client_auth.py), with keys made here: what is refused, with which code,
and that a refused request's body is never read."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from infra.vault import clients
from spira_core import client_auth as auth

ISSUER = "https://vault.test:8200/v1/identity/oidc"


def _key(kid: str):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return private, {**public, "kid": kid, "use": "sig", "alg": "RS256"}


PRIVATE, PUBLIC = _key("k1")
OTHER, _ = _key("k1")  # the same key id, another key: a forgery


def _token(key=PRIVATE, kid="k1", **claims) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": auth.AUDIENCE, "sub": "entity-1", "iat": now, "exp": now + 600}
    body |= {auth.CLIENT_CLAIM: "gate", **claims}
    return jwt.encode(
        {k: v for k, v in body.items() if v is not None}, key, algorithm="RS256", headers={"kid": kid}
    )


@pytest.fixture
def verifier() -> auth.TokenVerifier:
    keys = auth.KeySet(lambda: {"issuer": ISSUER, "keys": [PUBLIC]})
    assert keys.refresh()
    return auth.TokenVerifier(keys)


def test_serving_and_the_vault_layout_agree_on_the_audience_and_the_client_claim() -> None:
    assert auth.AUDIENCE == clients.PREDICT_AUDIENCE
    assert auth.CLIENT_CLAIM == clients.CLIENT_CLAIM
    assert all(
        json.loads(r["template"]).keys() == {auth.CLIENT_CLAIM} for r in clients.token_roles("local").values()
    )


def test_a_token_of_the_platform_is_accepted_and_names_its_client(verifier: auth.TokenVerifier) -> None:
    assert verifier.verify(f"Bearer {_token()}")[auth.CLIENT_CLAIM] == "gate"


@pytest.mark.parametrize(
    # header factories: a token is minted when its test runs (the suite can take longer than its expiry)
    ("header", "code"),
    [
        (lambda: None, "missing_credential"),
        (lambda: "Basic dXNlcjpwYXNz", "missing_credential"),
        (lambda: "Bearer ", "missing_credential"),
        (lambda: "Bearer not-a-jwt", "invalid_credential"),
        (lambda: f"Bearer {_token(key=OTHER)}", "invalid_credential"),
        (lambda: f"Bearer {_token(kid='unknown')}", "invalid_credential"),
        (lambda: f"Bearer {_token(exp=int(time.time()) - 60)}", "expired_credential"),
        (lambda: f"Bearer {_token(aud='another-service')}", "wrong_audience"),
        (lambda: f"Bearer {_token(iss='https://elsewhere/v1/identity/oidc')}", "wrong_issuer"),
        (lambda: f"Bearer {_token(**{auth.CLIENT_CLAIM: None})}", "invalid_credential"),
        (lambda: f"Bearer {_token(sub=None)}", "invalid_credential"),
    ],
)
def test_a_missing_forged_expired_or_foreign_token_is_refused_with_its_code(
    verifier: auth.TokenVerifier, header: Callable[[], str | None], code: str
) -> None:
    with pytest.raises(auth.Unauthenticated) as refused:
        verifier.verify(header())
    assert refused.value.code == code


def test_a_clients_next_requests_skip_the_signature_check_its_first_passed(
    verifier: auth.TokenVerifier, monkeypatch
) -> None:
    header = f"Bearer {_token()}"
    first = verifier.verify(header)

    def no_second_check(*args, **kwargs):
        raise AssertionError("the signature was checked again")

    monkeypatch.setattr(auth.jwt, "decode", no_second_check)
    assert verifier.verify(header) == first
    with pytest.raises(AssertionError):  # another token is still checked
        verifier.verify(f"Bearer {_token(sub='entity-2')}")


def test_a_verified_token_is_refused_once_it_expires() -> None:
    keys = auth.KeySet(lambda: {"issuer": ISSUER, "keys": [PUBLIC]})
    assert keys.refresh()
    verifier = auth.TokenVerifier(keys)
    # expired 4 s ago, within the 5 s leeway until the next whole second
    header = f"Bearer {_token(exp=int(time.time()) - auth.LEEWAY_S + 1)}"
    assert verifier.verify(header)[auth.CLIENT_CLAIM] == "gate"
    time.sleep(int(time.time()) + 1.05 - time.time())
    with pytest.raises(auth.Unauthenticated) as refused:
        verifier.verify(header)
    assert refused.value.code == "expired_credential"


def test_a_verified_token_is_refused_after_its_key_was_rotated_out() -> None:
    rotated, rotated_public = _key("k1")
    answers = [{"issuer": ISSUER, "keys": [rotated_public]}, {"issuer": ISSUER, "keys": [PUBLIC]}]
    keys = auth.KeySet(lambda: answers.pop())
    assert keys.refresh()
    verifier = auth.TokenVerifier(keys)
    header = f"Bearer {_token()}"
    assert verifier.verify(header)[auth.CLIENT_CLAIM] == "gate"
    assert keys.refresh()  # Vault now signs with another key under the same id
    with pytest.raises(auth.Unauthenticated) as refused:
        verifier.verify(header)
    assert refused.value.code == "invalid_credential"
    assert verifier.verify(f"Bearer {_token(key=rotated)}")[auth.CLIENT_CLAIM] == "gate"


def test_a_key_set_that_cannot_be_fetched_keeps_its_keys_and_says_why() -> None:
    answers = [{"issuer": ISSUER, "keys": [PUBLIC]}]

    def fetch():
        if not answers:
            raise ConnectionError("vault is down")
        return answers.pop()

    keys = auth.KeySet(fetch)
    assert not keys.ready()
    assert keys.refresh() and keys.ready()
    assert not keys.refresh()
    assert keys.ready() and keys.get("k1") is not None and keys.last_error == "vault is down"


def _call(app, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[list[dict], list[str]]:
    sent, events = [], []

    async def receive():
        events.append("receive")
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": path, "method": "POST", "headers": headers}
    asyncio.run(app(scope, receive, send))
    return sent, events


class _App:
    """The app behind the middleware: reads the whole body, as /predict does."""

    def __init__(self) -> None:
        self.called = 0

    async def __call__(self, scope, receive, send) -> None:
        self.called += 1
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def test_a_refused_request_is_answered_401_json_without_reading_its_body(
    verifier: auth.TokenVerifier,
) -> None:
    inner, codes = _App(), []
    app = auth.BearerAuth(inner, lambda: verifier, codes.append)
    sent, events = _call(app, "/predict", [(b"content-length", b"16777216")])
    assert events == [] and inner.called == 0  # not one receive(): the body stays in the socket
    assert sent[0]["status"] == 401
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"application/json" and b"Bearer" in headers[b"www-authenticate"]
    assert json.loads(sent[1]["body"])["error"] == "missing_credential" and codes == ["missing_credential"]


def test_a_valid_token_reaches_the_app_and_open_paths_need_none(verifier: auth.TokenVerifier) -> None:
    inner = _App()
    app = auth.BearerAuth(inner, lambda: verifier)
    sent, _ = _call(app, "/predict_batch", [(b"authorization", f"Bearer {_token()}".encode())])
    assert sent[0]["status"] == 200
    for path in ("/info", "/readyz"):
        assert _call(app, path, [])[0][0]["status"] == 200
    assert inner.called == 3


def test_without_vault_nothing_is_checked() -> None:
    inner = _App()
    assert _call(auth.BearerAuth(inner, lambda: None), "/predict", [])[0][0]["status"] == 200
