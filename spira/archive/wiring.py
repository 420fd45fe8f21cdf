"""The one wiring of `spira archive purge`: the archive-purge service's own secret and key.

Its credentials come the way a workload's do: a shell or pod carrying VAULT_ADDR/VAULT_ROLE/
VAULT_SECRET_PATH logs in as that role; an operator's shell without them acts as the local stack's
archive-purge service (`--env local`) or, for a cluster, reads the service's secret with the operator's
VAULT_TOKEN. Either way the deletion runs with the purge's least-privilege key, never the admin's.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

import boto3
from botocore.config import Config

from infra.environments import declared
from infra.vault import layout
from spira.archive.purge import S3Archive
from spira_core.tls import s3_verify

SERVICE = "archive-purge"
S3_CONFIG = Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 3})


class PurgeSetupError(RuntimeError):
    """The purge cannot find its credentials or they name another environment's archive."""


def purge_secret(env: str, environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    if env == "local":
        from spira.workload import act_as

        if not act_as(SERVICE, environ) and not environ.get("VAULT_ROLE"):
            raise PurgeSetupError(
                "no running local stack at $SPIRA_HOME to act as its archive-purge service (`spira stack up`)"
            )
    want = layout.secret_ref(env, SERVICE)
    if environ.get("VAULT_ROLE") and environ.get("VAULT_SECRET_PATH"):
        from spira_core.vault.client import VaultSecretReader
        from spira_core.vault.settings import VaultSettings

        if environ["VAULT_SECRET_PATH"].strip("/") != want:
            raise PurgeSetupError(
                f"VAULT_SECRET_PATH is {environ['VAULT_SECRET_PATH']!r}; --env {env} needs {want}"
            )
        settings = VaultSettings.from_env(environ)
        return VaultSecretReader(settings, settings.token_source()).read().data
    if not (environ.get("VAULT_ADDR") and environ.get("VAULT_TOKEN")):
        raise PurgeSetupError(
            "no Vault credentials: give the archive-purge contract (VAULT_ADDR, VAULT_ROLE, VAULT_SECRET_PATH) "
            "or an operator's VAULT_ADDR + VAULT_TOKEN"
        )
    import hvac

    client = hvac.Client(
        url=environ["VAULT_ADDR"], token=environ["VAULT_TOKEN"], verify=environ.get("VAULT_CACERT") or True
    )
    resp = client.secrets.kv.v2.read_secret_version(
        path=layout.secret_path(env, SERVICE), mount_point=layout.KV_MOUNT, raise_on_deleted_version=True
    )
    return resp["data"]["data"]


def archive_for(env: str, secret: dict[str, str], endpoint: str | None = None) -> S3Archive:
    bucket = declared().buckets(env)["archive_bucket"]
    if secret.get("archive_bucket") != bucket:
        raise PurgeSetupError(f"the {SERVICE} secret names {secret.get('archive_bucket')!r}, not {bucket!r}")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint or secret["s3_endpoint"],
        verify=s3_verify(endpoint or secret["s3_endpoint"]),
        region_name="us-east-1",
        config=S3_CONFIG,
        aws_access_key_id=secret["s3_access_key"],
        aws_secret_access_key=secret["s3_secret_key"],
    )
    return S3Archive(client, bucket)
