"""One MLflow user per workload that uses MLflow, created through MLflow's auth REST API as its admin.

MLflow's `basic-auth` app runs with `default_permission = NO_PERMISSIONS` (locally and in the clusters):
a workload user may create experiments and registered models, and MLflow gives the creator MANAGE on what
it creates (runs, versions, aliases); it sees nothing else. The user's name and password are written into
the workload's Vault secret (`mlflow_username` / `mlflow_password`), where its wiring reads them.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod

import hvac
import hvac.exceptions
import requests

from infra.vault import layout
from spira.secrets.store import SecretsError

USERS_API = "/api/2.0/mlflow/users"


class MlflowUsers(ABC):
    """The one thing seeding needs of MLflow's user store (a fake in tests/fakes/secrets.py)."""

    @abstractmethod
    def set_user(self, username: str, password: str) -> str:
        """Create the user with this password, or reset an existing user's; returns 'created' | 'reset'."""


class MlflowUserAdmin(MlflowUsers):
    """MLflow's user API with the admin's basic auth (the auth app's own endpoints)."""

    def __init__(
        self, tracking_uri: str, username: str, password: str, source: str, timeout_s: float = 30
    ) -> None:
        self.uri = tracking_uri.rstrip("/")
        self.source = source  # where the admin credential came from, for the error message
        self._auth = (username, password)
        self._timeout = timeout_s

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            resp = requests.request(
                method, f"{self.uri}{USERS_API}/{path}", auth=self._auth, timeout=self._timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise SecretsError(f"MLflow at {self.uri} is unreachable: {exc}") from exc
        if resp.status_code in (401, 403):
            raise SecretsError(
                f"MLflow at {self.uri} refused its admin ({resp.status_code}): check {self.source}"
            )
        if resp.status_code == 404 and "RESOURCE_DOES_NOT_EXIST" not in resp.text:
            raise SecretsError(
                f"MLflow at {self.uri} has no user API (404): it must run the basic-auth app "
                "(`mlflow server --app-name basic-auth`; locally: `spira stack down && spira stack up`)"
            )
        return resp

    def exists(self, username: str) -> bool:
        resp = self._request("GET", "get", params={"username": username})
        if resp.ok:
            return True
        if "RESOURCE_DOES_NOT_EXIST" in resp.text:
            return False
        raise SecretsError(f"MLflow: reading user {username} failed ({resp.status_code}): {resp.text[:200]}")

    def set_user(self, username: str, password: str) -> str:
        """Create the user with this password, or reset the password of an existing one."""
        if self.exists(username):
            resp = self._request(
                "PATCH", "update-password", json={"username": username, "password": password}
            )
            what = "reset"
        else:
            resp = self._request("POST", "create", json={"username": username, "password": password})
            what = "created"
        if not resp.ok:
            raise SecretsError(
                f"MLflow: {what[:-1]}ing user {username} failed ({resp.status_code}): {resp.text[:200]}"
            )
        return what


def mlflow_user(env: str, service: str) -> str:
    return f"spira-{env}-{service}"


def seed_mlflow_users(env: str, vault: hvac.Client, admin: MlflowUsers) -> dict[str, str]:
    """Give each MLflow workload whose secret lacks them an MLflow user and its credentials; returns
    service -> 'created' | 'kept' | 'no secret'. Idempotent; a concurrent seed loses cleanly (check-and-set)."""
    from spira.secrets.seed import read_secret

    outcome: dict[str, str] = {}
    for service in layout.mlflow_workloads():
        path = layout.secret_path(env, service)
        try:
            resp = client_read(vault, path)
        except hvac.exceptions.InvalidPath:
            outcome[service] = "no secret"
            continue
        data, version = resp["data"]["data"], resp["data"]["metadata"]["version"]
        if all(data.get(k) for k in layout.MLFLOW_USER_KEYS):
            outcome[service] = "kept"
            continue
        username, password = mlflow_user(env, service), secrets.token_urlsafe(24)
        admin.set_user(username, password)
        try:
            vault.secrets.kv.v2.create_or_update_secret(
                path=path,
                secret={**data, "mlflow_username": username, "mlflow_password": password},
                cas=version,
                mount_point=layout.KV_MOUNT,
            )
        except hvac.exceptions.InvalidRequest as exc:
            if "check-and-set" not in str(exc):
                raise
            # A concurrent seed wrote first (with its own password, which it also set in MLflow last or
            # will): leave the secret as it is; a rerun repairs a mismatch by resetting the password.
            current = read_secret(vault, env, service) or {}
            outcome[service] = "kept" if current.get("mlflow_username") else "retry"
            continue
        outcome[service] = "created"
    return outcome


def client_read(vault: hvac.Client, path: str) -> dict:
    return vault.secrets.kv.v2.read_secret_version(
        path=path, mount_point=layout.KV_MOUNT, raise_on_deleted_version=True
    )


def read_admin(env: str, vault: hvac.Client, tracking_uri: str) -> MlflowUserAdmin:
    """The environment's MLflow admin, from Vault (`spira/<env>/mlflow-admin`: written by `spira stack up`
    locally, by the Pulumi program in the clusters)."""
    try:
        data = client_read(vault, layout.secret_path(env, "mlflow-admin"))["data"]["data"]
    except hvac.exceptions.InvalidPath:
        raise SecretsError(
            f"{layout.secret_ref(env, 'mlflow-admin')} is missing: MLflow's admin credential is written "
            "there by the Pulumi program (local: `spira stack up`)"
        ) from None
    return MlflowUserAdmin(
        tracking_uri, data["username"], data["password"], layout.secret_ref(env, "mlflow-admin")
    )
