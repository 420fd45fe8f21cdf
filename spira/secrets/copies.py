"""Seeding a workload's secret from an operators' secret (the NATS users' passwords, the candidate dispatch
credential): read a KV v2 secret with its version, and write it back only if nobody wrote it in between
(check-and-set), so a concurrent seed or rotation is never overwritten."""

from __future__ import annotations

from typing import Any

import hvac
import hvac.exceptions

from infra.vault import layout


def read_versioned(vault: hvac.Client, env: str, service: str) -> tuple[dict, int]:
    """The secret's data and version; hvac's InvalidPath when there is none."""
    resp = vault.secrets.kv.v2.read_secret_version(
        path=layout.secret_path(env, service), mount_point=layout.KV_MOUNT, raise_on_deleted_version=True
    )
    return resp["data"]["data"], resp["data"]["metadata"]["version"]


def write_if_unchanged(
    vault: hvac.Client, env: str, service: str, data: dict[str, Any], version: int
) -> bool:
    """Write `data` if the secret is still at `version`; False when another writer came first."""
    try:
        vault.secrets.kv.v2.create_or_update_secret(
            path=layout.secret_path(env, service), secret=data, cas=version, mount_point=layout.KV_MOUNT
        )
    except hvac.exceptions.InvalidRequest as exc:
        if "check-and-set" not in str(exc):
            raise
        return False
    return True
