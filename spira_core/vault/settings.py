"""The runtime contract: three variables name the Vault, the role and the secret; the rest has defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from spira_core.vault.tokens import FileTokenSource, SignerTokenSource, TokenSource

DEFAULT_TOKEN_PATH = "/var/run/secrets/vault/token"
# The file name of Vault's CA certificate, beside the login credential (see `vault_ca_path`).
CA_FILE_NAME = "ca.crt"


def vault_ca_path(credential: Path) -> Path:
    """Where a workload finds the CA that signed Vault's certificate: `ca.crt` in the directory of the
    credential it logs in with. In a cluster that is the projected volume at /var/run/secrets/vault, which
    holds the service-account token and the ConfigMap `vault-ca` (key `ca.crt`); the local stack writes its
    CA beside its JWT signing key. The one rule, so no variable names the CA."""
    return credential.parent / CA_FILE_NAME


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class VaultSettings:
    addr: str
    role: str
    mount: str
    path: str
    auth_mount: str = "jwt"
    token_path: Path = Path(DEFAULT_TOKEN_PATH)
    signer_key: Path | None = None
    signer_subject: str | None = None
    cache_ttl_s: float = 30.0
    grace_s: float = 300.0
    timeout_s: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> VaultSettings:
        env = os.environ if environ is None else environ
        missing = [k for k in ("VAULT_ADDR", "VAULT_ROLE", "VAULT_SECRET_PATH") if not env.get(k)]
        if missing:
            raise SettingsError(f"missing environment variable(s): {', '.join(missing)}")
        secret_path = env["VAULT_SECRET_PATH"].strip("/")
        if "/" not in secret_path:
            raise SettingsError(f"VAULT_SECRET_PATH must be <kv-mount>/<path>, got {secret_path!r}")
        mount, path = secret_path.split("/", 1)
        return cls(
            addr=env["VAULT_ADDR"].rstrip("/"),
            role=env["VAULT_ROLE"],
            mount=mount,
            path=path,
            auth_mount=env.get("VAULT_AUTH_PATH", "jwt"),
            token_path=Path(env.get("VAULT_JWT_PATH", DEFAULT_TOKEN_PATH)),
            signer_key=Path(env["VAULT_JWT_SIGNER_KEY"]) if env.get("VAULT_JWT_SIGNER_KEY") else None,
            signer_subject=env.get("VAULT_JWT_SUBJECT"),
            cache_ttl_s=float(env.get("VAULT_SECRET_TTL_S", 30)),
            grace_s=float(env.get("VAULT_GRACE_S", 300)),
        )

    @property
    def tls(self) -> bool:
        return self.addr.startswith("https://")

    @property
    def ca_path(self) -> Path:
        """The CA for an https VAULT_ADDR, beside the token (clusters) or the signing key (local stack)."""
        return vault_ca_path(self.signer_key if self.signer_key is not None else self.token_path)

    def token_source(self) -> TokenSource:
        if self.signer_key is not None:
            if not self.signer_subject:
                raise SettingsError(
                    "VAULT_JWT_SIGNER_KEY needs VAULT_JWT_SUBJECT (the service-account subject)"
                )
            return SignerTokenSource(self.signer_key, self.signer_subject)
        return FileTokenSource(self.token_path)
