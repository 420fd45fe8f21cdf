"""The operator's view of Vault's KV v2: versioned reads, check-and-set writes, version metadata.

A port so rotation and status are plain logic over it (tested with an in-memory fake); the adapter is
hvac, and turns Vault's failure modes (sealed, unreachable, forbidden, CAS mismatch) into the errors
below, each of which reads as one line to an operator.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import hvac
import hvac.exceptions
import requests

from infra.vault import layout
from spira_core.vault.client import certificate_refused


class SecretsError(RuntimeError):
    """A failure an operator can act on; the message is the one line the CLI prints."""


class VaultUnavailable(SecretsError):
    pass


class CasConflict(SecretsError):
    def __init__(self, path: str, expected_version: int) -> None:
        super().__init__(
            f"{layout.KV_MOUNT}/{path} changed since version {expected_version} was read "
            "(someone else wrote it): check-and-set refused the write"
        )
        self.path = path
        self.expected_version = expected_version


@dataclass(frozen=True)
class Versioned:
    data: dict[str, Any]
    version: int


@dataclass(frozen=True)
class SecretMeta:
    current_version: int
    created_time: datetime  # of the current version
    custom: dict[str, str] = field(default_factory=dict)


class SecretStore(ABC):
    """Paths are inside the KV v2 mount (`spira/<env>/<service>`)."""

    @abstractmethod
    def read(self, path: str) -> Versioned | None:
        """The current version, or None when the secret does not exist (or its current version is deleted)."""

    @abstractmethod
    def write(self, path: str, data: dict[str, Any], cas: int) -> int:
        """Write a new version only if the current one is `cas` (0: only if absent); returns the new version.
        Raises CasConflict otherwise."""

    @abstractmethod
    def metadata(self, path: str) -> SecretMeta | None: ...

    @abstractmethod
    def set_custom_metadata(self, path: str, custom: dict[str, str]) -> None:
        """Replace the secret's custom metadata (KV v2 keeps it beside the versions, not in them)."""


def parse_time(value: str) -> datetime:
    # Vault answers RFC 3339 with nanoseconds ("2026-01-02T03:04:05.123456789Z"); Python takes micro.
    head, _, frac = value.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac or '0')[:6]:0<6}+00:00")


class HvacSecretStore(SecretStore):
    def __init__(self, client: hvac.Client, mount: str = layout.KV_MOUNT) -> None:
        self.client = client
        self.mount = mount

    @property
    def addr(self) -> str:
        return str(self.client.url)

    def _call(self, what: str, fn):
        try:
            return fn()
        except hvac.exceptions.VaultDown as exc:
            raise VaultUnavailable(
                f"Vault at {self.addr} is sealed; unseal it (docs/runbooks/vault.md)"
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            raise VaultUnavailable(
                f"Vault at {self.addr} is unreachable (connection refused or reset)"
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise VaultUnavailable(f"Vault at {self.addr} did not answer in time") from exc
        except hvac.exceptions.Forbidden as exc:
            raise SecretsError(
                f"Vault refused to {what} (permission denied): is the token an operator "
                "token of this environment, and still valid?"
            ) from exc
        except hvac.exceptions.Unauthorized as exc:
            raise SecretsError(f"Vault refused to {what}: the token is missing or invalid") from exc

    def read(self, path: str) -> Versioned | None:
        def go():
            try:
                resp = self.client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self.mount, raise_on_deleted_version=True
                )
            except hvac.exceptions.InvalidPath:
                return None
            return Versioned(dict(resp["data"]["data"]), int(resp["data"]["metadata"]["version"]))

        return self._call(f"read {self.mount}/{path}", go)

    def write(self, path: str, data: dict[str, Any], cas: int) -> int:
        def go():
            try:
                resp = self.client.secrets.kv.v2.create_or_update_secret(
                    path=path, secret=data, cas=cas, mount_point=self.mount
                )
            except hvac.exceptions.InvalidRequest as exc:
                if "check-and-set" in str(exc):
                    raise CasConflict(path, cas) from exc
                raise
            return int(resp["data"]["version"])

        return self._call(f"write {self.mount}/{path}", go)

    def metadata(self, path: str) -> SecretMeta | None:
        def go():
            try:
                resp = self.client.secrets.kv.v2.read_secret_metadata(path=path, mount_point=self.mount)
            except hvac.exceptions.InvalidPath:
                return None
            meta = resp["data"]
            current = int(meta["current_version"])
            created = meta["versions"][str(current)]["created_time"]
            return SecretMeta(current, parse_time(created), dict(meta.get("custom_metadata") or {}))

        return self._call(f"read the metadata of {self.mount}/{path}", go)

    def set_custom_metadata(self, path: str, custom: dict[str, str]) -> None:
        self._call(
            f"update the metadata of {self.mount}/{path}",
            lambda: self.client.secrets.kv.v2.update_metadata(
                path=path, custom_metadata=custom, mount_point=self.mount
            ),
        )


def probe(addr: str, timeout_s: float = 5.0, verify: bool | str = True) -> None:
    """Raise VaultUnavailable with one clear line unless Vault at `addr` is initialised and unsealed.

    Asked before anything else so the operator learns "sealed" rather than an error from the first
    write; sys/health needs no token and answers 503 when sealed, 501 when not initialised."""
    try:
        resp = requests.get(
            f"{addr.rstrip('/')}/v1/sys/health",
            timeout=timeout_s,
            params={"standbyok": "true", "perfstandbyok": "true"},
            verify=verify,
        )
    except requests.exceptions.SSLError as exc:
        if not certificate_refused(exc):
            raise VaultUnavailable(f"Vault at {addr} is unreachable (TLS handshake broken off)") from exc
        trusted = verify if isinstance(verify, str) else "the system's CAs (set VAULT_CACERT to Vault's CA)"
        raise VaultUnavailable(f"Vault at {addr} failed TLS verification against {trusted}") from exc
    except requests.exceptions.ConnectionError as exc:
        raise VaultUnavailable(f"Vault at {addr} is unreachable (connection refused or reset)") from exc
    except requests.exceptions.Timeout as exc:
        raise VaultUnavailable(f"Vault at {addr} did not answer within {timeout_s:g}s") from exc
    if resp.status_code == 503:
        raise VaultUnavailable(f"Vault at {addr} is sealed; unseal it (docs/runbooks/vault.md)")
    if resp.status_code == 501:
        raise VaultUnavailable(f"Vault at {addr} is not initialised")
    if resp.status_code not in (200, 429, 472, 473):
        raise VaultUnavailable(f"Vault at {addr} is unhealthy (sys/health answered {resp.status_code})")
