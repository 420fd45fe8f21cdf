"""Log in with a JWT and read a KV v2 secret; log in again when the token is refused."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import requests

from spira_core.vault.settings import VaultSettings
from spira_core.vault.tokens import TokenSource


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
    def __init__(
        self, settings: VaultSettings, tokens: TokenSource, session: requests.Session | None = None
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.session = session or requests.Session()
        self._client_token: str | None = None
        self.logins = 0

    def _login(self) -> str:
        s = self.settings
        try:
            resp = self.session.post(
                f"{s.addr}/v1/auth/{s.auth_mount}/login",
                json={"role": s.role, "jwt": self.tokens.token()},
                timeout=s.timeout_s,
            )
        except requests.RequestException as exc:
            raise VaultError(f"Vault at {s.addr} is unreachable: {exc.__class__.__name__}") from exc
        if resp.status_code != 200:
            raise VaultError(
                f"login as role {s.role!r} refused ({resp.status_code}): {_errors(resp)}", resp.status_code
            )
        self.logins += 1
        return resp.json()["auth"]["client_token"]

    def _get(self, token: str) -> requests.Response:
        s = self.settings
        try:
            return self.session.get(
                f"{s.addr}/v1/{s.mount}/data/{s.path}", headers={"X-Vault-Token": token}, timeout=s.timeout_s
            )
        except requests.RequestException as exc:
            raise VaultError(f"Vault at {s.addr} is unreachable: {exc.__class__.__name__}") from exc

    def read(self) -> SecretVersion:
        if self._client_token is None:
            self._client_token = self._login()
        resp = self._get(self._client_token)
        if resp.status_code == 403:  # token expired or revoked: one fresh login, then give up
            self._client_token = self._login()
            resp = self._get(self._client_token)
        if resp.status_code != 200:
            raise VaultError(
                f"reading {self.settings.mount}/{self.settings.path} failed ({resp.status_code}): "
                f"{_errors(resp)}",
                resp.status_code,
            )
        body = resp.json()["data"]
        return SecretVersion(data=dict(body["data"]), version=int(body["metadata"]["version"]))


def _errors(resp: requests.Response) -> str:
    try:
        return "; ".join(resp.json().get("errors", [])) or resp.reason
    except ValueError:
        return resp.reason or "no detail"
