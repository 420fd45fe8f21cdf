"""Who may call the model (and the intake API): a bearer JWT from Vault's identity OIDC provider, checked
before the body is read. In spira_core so that every upload API checks it the same way.

Clients (hospital apps, the intake, the gate) log in to Vault with their own role and present
`Authorization: Bearer <token>` (spira_core/predict_credential.py; the roles: infra/vault/clients.py).
`BearerAuth` is ASGI middleware in front of the whole app: a request without a valid token is answered
401 before admission, before a byte of its body is read. The kubelet's and Prometheus's endpoints
(/livez, /readyz, /metrics) are BentoML's, outside this app, and stay open.

The token is checked against the public keys Vault publishes (`/v1/identity/oidc/.well-known/keys`, no
login needed, over TLS trusting only Vault's CA) and the issuer its discovery document names
(`.well-known/openid-configuration`), held by `KeySet`: fetched at start and refreshed by a background
thread, never on the request path (a token with an unknown key id wakes the thread early, and is refused
meanwhile). Then its audience (AUDIENCE), expiry and the client's kind (claim CLIENT_CLAIM). Only
/predict and /predict_batch are guarded: /info (what serves, no patient data) stays open as /readyz does.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

log = logging.getLogger(__name__)

# infra/vault/clients.py PREDICT_AUDIENCE and CLIENT_CLAIM: the same values (tests/unit/serving/test_client_auth.py)
AUDIENCE = "spira-predict"
CLIENT_CLAIM = "spira_client"
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384"]
LEEWAY_S = 5  # clock skew between Vault and this pod
PROTECTED_PREFIXES = ("/predict",)  # /predict and /predict_batch


def oidc_url(vault_addr: str, document: str) -> str:
    """A document of Vault's identity OIDC provider: `keys` (JWKS) or `openid-configuration`."""
    return f"{vault_addr.rstrip('/')}/v1/identity/oidc/.well-known/{document}"


class Unauthenticated(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class KeySet:
    """The issuer and its public keys by key id, from `fetch` ({"issuer", "keys"}: the discovery document's
    issuer and the JWKS), refreshed in the background."""

    def __init__(
        self,
        fetch: Callable[[], Mapping[str, Any]],
        refresh_s: float = 60.0,
        min_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fetch = fetch
        self.refresh_s = refresh_s
        self.min_interval_s = min_interval_s  # a flood of unknown key ids never hammers Vault
        self.clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self.issuer: str | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.last_error: str | None = None
        self.fetched_at: float | None = None

    def refresh(self) -> bool:
        """One fetch (the network call; never on the event loop). False, and the old keys kept, on failure."""
        try:
            document = self.fetch()
            issuer = str(document["issuer"])
            keys = {}
            for entry in document.get("keys", []):
                if entry.get("use", "sig") == "sig" and entry.get("kid"):
                    keys[entry["kid"]] = jwt.PyJWK.from_dict(entry)
        except Exception as exc:  # an unreachable Vault or a bad document: keep what we have
            if str(exc) != self.last_error:
                log.warning("fetching the identity provider's keys failed: %s", exc)
            self.last_error = str(exc)
            return False
        with self._lock:
            self._keys, self.issuer = keys, issuer
            self.fetched_at = self.clock()
        self.last_error = None
        return True

    def get(self, kid: str) -> jwt.PyJWK | None:
        with self._lock:
            key = self._keys.get(kid)
        if key is None:
            self._wake.set()  # maybe a key Vault rotated in since the last fetch
        return key

    def ready(self) -> bool:
        with self._lock:
            return bool(self._keys)

    def start_refresher(self) -> threading.Thread:
        def loop() -> None:
            while True:
                woken = self._wake.wait(self.refresh_s if self.ready() else self.min_interval_s)
                self._wake.clear()
                self.refresh()
                if woken:
                    time.sleep(self.min_interval_s)

        thread = threading.Thread(target=loop, name="spira-jwks-refresh", daemon=True)
        thread.start()
        return thread


# a verified token's claims are kept until it expires, so a client's later requests skip the signature
# check (RS256 through PyJWT: ~0.12 ms of the event loop per request, docs/performance.md)
VERIFIED_CACHE_SIZE = 4096


@dataclass
class TokenVerifier:
    keys: KeySet
    audience: str = AUDIENCE
    clock: Callable[[], float] = time.time
    # token -> (its claims, its expiry, its key id, the key that verified it): reused while that key is still
    # the key set's (a refresh or a rotation replaces it) and until the expiry (plus LEEWAY_S, as PyJWT's)
    _verified: dict[str, tuple[dict[str, Any], float, str, jwt.PyJWK]] = field(
        default_factory=dict, repr=False
    )

    def verify(self, authorization: str | None) -> dict[str, Any]:
        """The token's claims, or Unauthenticated with a code a client can act on."""
        if not authorization:
            raise Unauthenticated(
                "missing_credential", "send 'Authorization: Bearer <token>' with a token from Vault"
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("missing_credential", "the Authorization header must be 'Bearer <token>'")
        known = self._verified.get(token)
        if known is not None:
            claims, expiry, kid, key = known
            if self.clock() < expiry + LEEWAY_S and self.keys.get(kid) is key:  # PyJWT's own bound
                return claims
            del self._verified[token]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("invalid_credential", f"the token is not a JWT: {exc}") from exc
        kid = str(header.get("kid", ""))
        key = self.keys.get(kid)
        if key is None:
            raise Unauthenticated("invalid_credential", "the token is not signed by a key of this platform")
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[key.algorithm_name] if key.algorithm_name in ALGORITHMS else ALGORITHMS,
                audience=self.audience,
                issuer=self.keys.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("expired_credential", "the token has expired: fetch a new one") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("wrong_audience", f"the token is not meant for {self.audience}") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated("wrong_issuer", f"the token was not issued by {self.keys.issuer}") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("invalid_credential", f"the token is not valid: {exc}") from exc
        if not claims.get(CLIENT_CLAIM):
            raise Unauthenticated("invalid_credential", f"the token names no client ({CLIENT_CLAIM})")
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (claims, float(claims["exp"]), kid, key)
        return claims


def vault_keys(vault_addr: str, ca_path: Path | None, timeout_s: float = 5.0) -> Callable[[], Mapping]:
    """{"issuer", "keys"} of the Vault at `vault_addr`'s identity provider, over https trusting only
    `ca_path` (the CA beside the pod's Vault token)."""
    import requests

    verify: bool | str = str(ca_path) if ca_path is not None else True

    def get(document: str) -> Mapping:
        response = requests.get(oidc_url(vault_addr, document), verify=verify, timeout=timeout_s)
        response.raise_for_status()
        return response.json()

    def fetch() -> Mapping:
        return {"issuer": get("openid-configuration")["issuer"], "keys": get("keys")["keys"]}

    return fetch


class BearerAuth:
    """ASGI middleware: the protected paths need a valid token; nothing of the body is read before."""

    def __init__(
        self,
        app: Callable,
        verifier: Callable[[], TokenVerifier | None],
        rejected: Callable[[str], None] = lambda _code: None,
        protected: tuple[str, ...] = PROTECTED_PREFIXES,
        clients: tuple[str, ...] | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.rejected = rejected
        self.protected = protected  # path prefixes that need a token (the intake API names its own)
        # the client kinds (claim CLIENT_CLAIM) let in; None: every client of the platform. Another
        # kind's valid token is answered 403, also before the body is read.
        self.clients = clients

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.protected):
            await self.app(scope, receive, send)
            return
        verifier = self.verifier()
        if verifier is not None:
            headers = dict(scope.get("headers") or [])
            value = headers.get(b"authorization")
            try:
                claims = verifier.verify(value.decode("latin-1") if value is not None else None)
            except Unauthenticated as exc:
                self.rejected(exc.code)
                await _unauthorized(send, exc)
                return
            if self.clients is not None and claims[CLIENT_CLAIM] not in self.clients:
                self.rejected("forbidden_client")
                await _refuse(
                    send,
                    403,
                    "forbidden_client",
                    f"a {claims[CLIENT_CLAIM]} credential may not call {scope['path']}: "
                    f"only {', '.join(self.clients)} clients may",
                )
                return
            scope.setdefault("state", {})[CLIENT_CLAIM] = claims[CLIENT_CLAIM]
        await self.app(scope, receive, send)


async def _unauthorized(send: Callable, exc: Unauthenticated) -> None:
    challenge = f'Bearer realm="spira", error="invalid_token", error_description="{exc.code}"'
    await _refuse(send, 401, exc.code, exc.detail, [(b"www-authenticate", challenge.encode())])


async def _refuse(
    send: Callable, status: int, code: str, detail: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": code, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(extra or []),
                # the body is not read: the connection cannot be reused for another request
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def verifier_from_env(environ: Mapping[str, str]) -> TokenVerifier | None:
    """The check of clients' tokens against the keys of the Vault the pod logs in to (its VAULT_ADDR and the
    CA beside its token), fetched now and refreshed in the background; None without Vault (a local run
    with no stack), where nothing is checked."""
    if not environ.get("VAULT_ADDR"):
        return None
    from spira_core.vault import VaultSettings

    settings = VaultSettings.from_env(environ)
    keys = KeySet(vault_keys(settings.addr, settings.ca_path if settings.tls else None))
    keys.refresh()  # a failure leaves the server unready until the refresher's next fetch works
    keys.start_refresher()
    return TokenVerifier(keys)
