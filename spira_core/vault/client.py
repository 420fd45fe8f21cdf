"""Log in with a JWT and read a KV v2 secret through hvac; log in again when the token is refused.

Over https the only trusted CA is the one beside the login credential (`VaultSettings.ca_path`): the
cluster mounts it there from the ConfigMap `vault-ca`, the local stack writes its own there. A missing CA
is an error naming the path, never a silent fallback to the system's trust store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import hvac
import hvac.exceptions
import requests

from spira_core.vault.settings import VaultSettings
from spira_core.vault.tokens import TokenSource

T = TypeVar("T")

# hvac raises one class per status; the status is what callers (and the audit of a refusal) need.
_STATUS = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}


def certificate_refused(exc: BaseException) -> bool:
    """Whether a TLS failure is the certificate not verifying (wrong CA, wrong name), as opposed to a
    connection that broke during the handshake (which is Vault being unreachable)."""
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


class VaultError(RuntimeError):
    """Vault could not be reached or refused us; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SecretVersion:
    data: dict[str, str]
    version: int


class SecretReader(ABC):
    @abstractmethod
    def read(self) -> SecretVersion: ...


class VaultSecretReader(SecretReader):
    def __init__(self, settings: VaultSettings, tokens: TokenSource) -> None:
        self.settings = settings
        self.tokens = tokens
        self._client: hvac.Client | None = None
        self.logins = 0

    @property
    def client_token(self) -> str | None:
        return self._client.token if self._client is not None else None

    def _hvac(self) -> hvac.Client:
        if self._client is None:
            s = self.settings
            verify: bool | str = True
            if s.tls:
                if not s.ca_path.is_file():
                    raise VaultError(
                        f"the Vault CA {s.ca_path} does not exist: {s.addr} is https and only that CA is "
                        "trusted (in a cluster, mount the ConfigMap vault-ca there, beside the token)"
                    )
                verify = str(s.ca_path)
            self._client = hvac.Client(url=s.addr, verify=verify, timeout=s.timeout_s)
        return self._client

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        s = self.settings
        try:
            return fn()
        except hvac.exceptions.VaultError as exc:
            status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), None)
            detail = "; ".join(exc.errors or []) or exc.args[0] or "no detail"
            raise VaultError(f"{what} failed ({status}): {detail}", status) from exc
        except requests.exceptions.SSLError as exc:
            if certificate_refused(exc):
                raise VaultError(
                    f"Vault at {s.addr} presented a certificate that {s.ca_path} does not verify"
                ) from exc
            raise VaultError(f"Vault at {s.addr} is unreachable: {exc.__class__.__name__}") from exc
        except requests.RequestException as exc:
            raise VaultError(f"Vault at {s.addr} is unreachable: {exc.__class__.__name__}") from exc

    def _login(self, client: hvac.Client) -> None:
        s = self.settings
        jwt = self.tokens.token()
        self._call(
            f"login as role {s.role!r}",
            lambda: client.auth.jwt.jwt_login(role=s.role, jwt=jwt, path=s.auth_mount),
        )
        self.logins += 1

    def _read(self, client: hvac.Client) -> SecretVersion:
        s = self.settings
        body = self._call(
            f"reading {s.mount}/{s.path}",
            lambda: client.secrets.kv.v2.read_secret_version(
                path=s.path, mount_point=s.mount, raise_on_deleted_version=True
            ),
        )["data"]
        return SecretVersion(data=dict(body["data"]), version=int(body["metadata"]["version"]))

    def read(self) -> SecretVersion:
        client = self._hvac()
        if not client.token:
            self._login(client)
        try:
            return self._read(client)
        except VaultError as exc:
            if exc.status != 403:  # token expired or revoked: one fresh login, then give up
                raise
        self._login(client)
        return self._read(client)
