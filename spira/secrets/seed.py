"""Seed an environment's secrets: one object-store user and key per workload, written to Vault.

Each user's object-store permissions are exactly its declared grants (infra/environments.yaml,
`object_store_access`), re-applied at every seed.

Values come from a generator (the object store mints keys), never from files in git. Idempotent: a
secret that already exists is left alone (check-and-set version 0 makes a concurrent seed lose cleanly).
"""

from __future__ import annotations

from dataclasses import dataclass

import hvac
import hvac.exceptions

from infra.environments import declared
from infra.retention import retention
from infra.vault import layout
from spira.secrets.objectstore import ObjectStoreAdmin


@dataclass(frozen=True)
class EnvironmentEndpoints:
    """Where workloads of an environment reach the shared services (not secret, but env-specific)."""

    s3_endpoint: str
    mlflow_tracking_uri: str
    # NATS's client address; None: the in-cluster Service infra/environments.yaml declares
    nats_url: str | None = None


def buckets(env: str) -> dict[str, str]:
    """Secret key -> bucket, as infra/environments.yaml declares them (the object store creates the same)."""
    return declared().buckets(env)


def object_store_user(env: str, service: str) -> str:
    return f"spira-{env}-{service}"


def read_secret(client: hvac.Client, env: str, service: str) -> dict[str, str] | None:
    try:
        resp = client.secrets.kv.v2.read_secret_version(
            path=layout.secret_path(env, service), mount_point=layout.KV_MOUNT, raise_on_deleted_version=True
        )
    except hvac.exceptions.InvalidPath:
        return None
    return resp["data"]["data"]


def serving_settings(env: str) -> dict[str, str]:
    """The serving settings infra/environments.yaml declares for `env`, checked against serving's keys."""
    from serving.settings import SETTINGS

    declared_settings = declared().serving_settings(env)
    unknown = sorted(set(declared_settings) - set(SETTINGS))
    if unknown:
        raise ValueError(
            f"serving_settings for {env} has unknown keys {unknown}; serving reads {list(SETTINGS)}"
        )
    return declared_settings


def service_values(env: str, service: str, endpoints: EnvironmentEndpoints) -> dict[str, str]:
    """The non-key values of a service's secret: those the layout declares, and serving's settings."""
    known = {
        "s3_endpoint": endpoints.s3_endpoint,
        "mlflow_tracking_uri": endpoints.mlflow_tracking_uri,
        "nats_url": endpoints.nats_url or declared().service("nats").url,
        "queue": declared().queue.secret_value(env),
        **buckets(env),
    }
    values = {k: known[k] for k in layout.SERVICES[service].keys if k in known}
    return {**values, **serving_settings(env)} if service == "serving" else values


def seed(
    env: str, vault: hvac.Client, store: ObjectStoreAdmin, endpoints: EnvironmentEndpoints
) -> dict[str, str]:
    """Create what is missing; returns service -> 'created' | 'kept'."""
    outcome: dict[str, str] = {}
    for service in (s for s in layout.SERVICES.values() if s.workload):
        values = service_values(env, service.name, endpoints)
        for bucket in (v for k, v in values.items() if k.endswith("_bucket")):
            store.ensure_bucket(bucket)
            # Versioning and lifecycle as declared (retention), re-applied at every seed like the grants.
            store.configure_bucket(retention().bucket(env, bucket))
        user = object_store_user(env, service.name)
        # The declared grants are applied at every seed, to kept users too: a narrowed grant reaches
        # existing environments (and a widened one never outlives its declaration).
        store.ensure_user(user, declared().object_store_grants(env, service.name))
        if read_secret(vault, env, service.name) is not None:
            outcome[service.name] = "kept"
            continue
        key = store.create_key(user)
        try:
            vault.secrets.kv.v2.create_or_update_secret(
                path=layout.secret_path(env, service.name),
                secret={**values, "s3_access_key": key.access_key, "s3_secret_key": key.secret_key},
                cas=0,
                mount_point=layout.KV_MOUNT,
            )
        except BaseException as exc:
            # The key never reached Vault: delete it rather than leave a live, unrecorded credential.
            store.delete_key(user, key.access_key)
            if isinstance(exc, hvac.exceptions.InvalidRequest) and "check-and-set" in str(exc):
                outcome[service.name] = "kept"  # a concurrent seed wrote it first
                continue
            raise
        outcome[service.name] = "created"
    return outcome
