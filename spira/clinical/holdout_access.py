"""The clinical gate Job's object-store key for the holdout, from its own secret in Vault.

The Job follows the workload contract (VAULT_ADDR, VAULT_ROLE, VAULT_SECRET_PATH: infra/vault/layout.py's
service `gate`, whose object-store user may only GetObject under the features bucket's holdout/), and
VAULT_PREDICT_ROLE names its client role for /predict (infra/vault/clients.py). The secret is read with the
standard library (the gate image has no hvac), logging in as spira_core.predict_credential does (the
projected token and Vault's CA beside it), and handed to boto3 as the standard AWS variables that
spira_core.clinical.source reads. An https object store (the clusters') is verified against the platform
CA, the `ca.crt` beside the login credential that verifies Vault (AWS_CA_BUNDLE, which boto3 reads).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from spira_core.predict_credential import CA_FILE_NAME, CredentialError, PredictCredential, login_from_env

CONTRACT = ("VAULT_ADDR", "VAULT_ROLE", "VAULT_SECRET_PATH")


class HoldoutAccessError(RuntimeError):
    """The gate's secret could not be read, or lacks its object-store key."""


class SecretRead(PredictCredential):
    """A Vault login as the workload's role (the same login paths as a /predict client), then one KV v2 read."""

    def read(self, secret_ref: str) -> dict[str, str]:
        mount, _, path = secret_ref.strip("/").partition("/")
        if not path:
            raise HoldoutAccessError(f"VAULT_SECRET_PATH must be <kv-mount>/<path>, got {secret_ref!r}")
        data = self._request("GET", f"{mount}/data/{path}", token=self._vault_login())
        return {str(k): str(v) for k, v in (data.get("data") or {}).items()}


def has_secret(env: Mapping[str, str]) -> bool:
    return all(env.get(k) for k in CONTRACT)


def aws_variables(secret: Mapping[str, str], ca: Path | None = None) -> dict[str, str]:
    """The secret's S3 key and endpoint as the variables boto3 reads; for https, the CA it trusts."""
    missing = [k for k in ("s3_endpoint", "s3_access_key", "s3_secret_key") if not secret.get(k)]
    if missing:
        raise HoldoutAccessError(f"the gate's secret lacks {', '.join(missing)}")
    return {
        "AWS_ACCESS_KEY_ID": secret["s3_access_key"],
        "AWS_SECRET_ACCESS_KEY": secret["s3_secret_key"],
        "AWS_ENDPOINT_URL": secret["s3_endpoint"],
        **(
            {"AWS_CA_BUNDLE": str(ca)}
            if ca is not None and secret["s3_endpoint"].startswith("https://")
            else {}
        ),
    }


def holdout_variables(env: Mapping[str, str]) -> dict[str, str]:
    """Log in as VAULT_ROLE, read VAULT_SECRET_PATH, return the AWS variables for the holdout."""
    role = env["VAULT_ROLE"]
    try:
        login = login_from_env(env, role)
        secret = SecretRead(env["VAULT_ADDR"], role, login).read(env["VAULT_SECRET_PATH"])
    except CredentialError as exc:
        raise HoldoutAccessError(f"the gate's secret {env['VAULT_SECRET_PATH']}: {exc}") from exc
    return aws_variables(secret, Path(login.beside).parent / CA_FILE_NAME)
