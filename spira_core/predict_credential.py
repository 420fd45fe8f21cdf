"""The credential a client of /predict presents: `Authorization: Bearer <JWT>` signed by Vault's identity
OIDC provider (infra/vault/clients.py declares the roles; spira_core/client_auth.py checks the token).

    from spira_core.predict_credential import PredictCredential

    credential = PredictCredential.from_env()  # reads VAULT_ADDR and VAULT_ROLE (+ how to log in, below)
    requests.post(f"{url}/predict", files=..., headers=credential.headers())

VAULT_ROLE names the client's role, `spira-<env>-predict-<kind>` (kind: hospital, gate, intake): the
client logs in to Vault with it and reads `identity/oidc/token/<the same name>`. How it logs in, the
first that applies:

- AppRole (hospital apps, outside the clusters): VAULT_APPROLE_ROLE_ID and VAULT_APPROLE_SECRET_ID_PATH
  (a file holding the secret ID an operator issued: docs/runbooks/vault.md);
- the local stack's signer: VAULT_JWT_SIGNER_KEY and VAULT_JWT_SUBJECT (as spira_core.vault);
- a service-account token file: VAULT_JWT_PATH, default /var/run/secrets/vault/token (clusters).

Over https the only trusted CA is `ca.crt` beside the login credential (the rule of spira_core.vault).
The token is cached and fetched again once less than a third of its lifetime is left; thread-safe.
Standard library only (the JWT signer aside, local stack only): the loadtest image carries this one file.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TOKEN_PATH = "/var/run/secrets/vault/token"
CA_FILE_NAME = "ca.crt"
HEADER = "Authorization"


class CredentialError(RuntimeError):
    """Vault could not be reached, or refused the login or the token."""


@dataclass(frozen=True)
class Login:
    """How to log in: the auth mount, its request body, and the file beside which the CA lies."""

    mount: str
    body: Callable[[], dict[str, str]]
    beside: Path


def _read_file(path: Path, what: str) -> str:
    try:
        value = path.read_text().strip()
    except FileNotFoundError as exc:
        raise CredentialError(f"the {what} file {path} does not exist") from exc
    if not value:
        raise CredentialError(f"the {what} file {path} is empty")
    return value


def _signed_jwt(key: Path, subject: str) -> str:
    import jwt  # PyJWT: only the local stack's signer needs it

    now = int(time.time())
    claims = {"iss": "spira-local-stack", "sub": subject, "aud": "vault", "iat": now, "nbf": now - 5}
    return jwt.encode({**claims, "exp": now + 300}, key.read_bytes(), algorithm="RS256")


def login_from_env(env: Mapping[str, str], role: str) -> Login:
    if env.get("VAULT_APPROLE_ROLE_ID"):
        if not env.get("VAULT_APPROLE_SECRET_ID_PATH"):
            raise CredentialError(
                "VAULT_APPROLE_ROLE_ID needs VAULT_APPROLE_SECRET_ID_PATH (the secret ID file)"
            )
        secret_path = Path(env["VAULT_APPROLE_SECRET_ID_PATH"])
        role_id = env["VAULT_APPROLE_ROLE_ID"]
        return Login(
            "approle",
            lambda: {"role_id": role_id, "secret_id": _read_file(secret_path, "AppRole secret ID")},
            secret_path,
        )
    mount = env.get("VAULT_AUTH_PATH", "jwt")
    if env.get("VAULT_JWT_SIGNER_KEY"):
        key, subject = Path(env["VAULT_JWT_SIGNER_KEY"]), env.get("VAULT_JWT_SUBJECT", "")
        if not subject:
            raise CredentialError(
                "VAULT_JWT_SIGNER_KEY needs VAULT_JWT_SUBJECT (the service-account subject)"
            )
        return Login(mount, lambda: {"role": role, "jwt": _signed_jwt(key, subject)}, key)
    token_path = Path(env.get("VAULT_JWT_PATH", DEFAULT_TOKEN_PATH))
    return Login(
        mount, lambda: {"role": role, "jwt": _read_file(token_path, "service-account token")}, token_path
    )


class PredictCredential:
    """A client's bearer token for /predict, from Vault; `headers()` is all a caller needs."""

    def __init__(self, addr: str, role: str, login: Login, timeout_s: float = 10.0) -> None:
        self.addr = addr.rstrip("/")
        self.role = role
        self.login = login
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._context: ssl.SSLContext | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, role: str | None = None) -> PredictCredential:
        """From VAULT_ADDR and VAULT_ROLE (or `role`, for a workload whose VAULT_ROLE reads its secret)."""
        env = os.environ if environ is None else environ
        role = role or env.get("VAULT_ROLE", "")
        if not env.get("VAULT_ADDR") or not role:
            raise CredentialError(
                "a /predict credential needs VAULT_ADDR and VAULT_ROLE (spira-<env>-predict-<kind>)"
            )
        return cls(env["VAULT_ADDR"], role, login_from_env(env, role))

    def headers(self) -> dict[str, str]:
        return {HEADER: f"Bearer {self.token()}"}

    def invalidate(self) -> None:
        """Forget the cached token (a server answered 401 expired_credential): the next call fetches anew."""
        with self._lock:
            self._token = None

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                started = time.monotonic()
                data = self._request("GET", f"identity/oidc/token/{self.role}", token=self._vault_login())
                self._token = str(data["token"])
                self._renew_at = started + float(data.get("ttl", 0)) * 2 / 3
            return self._token

    def _vault_login(self) -> str:
        auth = self._request("POST", f"auth/{self.login.mount}/login", body=self.login.body())
        return str(auth["client_token"])

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.addr.startswith("https://"):
            return None
        if self._context is None:
            ca = self.login.beside.parent / CA_FILE_NAME
            if not ca.is_file():
                raise CredentialError(
                    f"the Vault CA {ca} does not exist: {self.addr} is https and only that CA is trusted"
                )
            self._context = ssl.create_default_context(cafile=str(ca))
        return self._context

    def _request(self, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
        req = urllib.request.Request(
            f"{self.addr}/v1/{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", **({"X-Vault-Token": token} if token else {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s, context=self._ssl()) as resp:
                answer = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise CredentialError(
                f"Vault refused {method} {path} as role {self.role!r} ({exc.code}): {detail}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise CredentialError(f"Vault at {self.addr} is unreachable: {exc}") from exc
        key = "auth" if path.startswith("auth/") else "data"
        if not answer.get(key):
            raise CredentialError(f"Vault answered {method} {path} without {key!r}")
        return answer[key]
