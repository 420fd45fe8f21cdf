"""Which Vault, object store and endpoints an environment means; the one wiring for `spira secrets`.

- local: the local stack (its config under $SPIRA_HOME), logged in with the operator JWT role, not root.
- staging / production: VAULT_ADDR + VAULT_TOKEN of an operator (never root in normal operation), and
  VAULT_CACERT when Vault's certificate comes from the cluster's private CA (as for the `vault` CLI). The
  object store's admin credential and endpoint are read from Vault (`spira/<env>/objectstore`, written
  there by the Pulumi program); the store's engine (MinIO or SeaweedFS) comes from the stack's Pulumi
  config, the one place it is declared.
Vault is probed first, so a sealed or unreachable Vault is reported as exactly that.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property

from infra.vault import layout
from spira.secrets.objectstore import IamObjectStoreAdmin, ObjectStoreAdmin
from spira.secrets.seed import EnvironmentEndpoints
from spira.secrets.store import HvacSecretStore, SecretsError, probe

LOCAL = "local"
ENGINES = ("seaweedfs", "minio")


def cluster_engine(env: str) -> str:
    """The object-store engine the environment's Pulumi stack declares (`spira-platform:objectStore`)."""
    from infra.offline import stack_config

    return stack_config(env)["spira-platform:objectStore"]


def cluster_mlflow_uri(env: str) -> str:
    """The tracking URI the Pulumi program exports for the stack (computed offline, under mocks)."""
    from infra.offline import run

    return str(run(env).outputs["mlflowTrackingUri"])


class Target:
    def __init__(self, env: str, environ: Mapping[str, str] | None = None, engine: str | None = None) -> None:
        if env not in layout.ENVIRONMENTS:
            raise SecretsError(
                f"unknown environment {env!r}; expected one of {', '.join(layout.ENVIRONMENTS)}"
            )
        if engine is not None and engine not in ENGINES:
            raise SecretsError(
                f"unknown object-store engine {engine!r}; expected one of {', '.join(ENGINES)}"
            )
        self.env = env
        self.environ = os.environ if environ is None else environ
        self._engine = engine

    # -- Vault -----------------------------------------------------------------------------------
    @cached_property
    def _local(self):
        from spira.stack import LocalStack, StackConfig
        from spira.stack.errors import StackError
        from spira.stack.vault import OpenBaoService

        cfg = StackConfig.load(self.environ.get("SPIRA_HOME"))
        vault = OpenBaoService(cfg)
        # No CA yet: the stack never ran here, and the probe reports the Vault as unreachable.
        probe(vault.addr, verify=str(vault.ca_cert) if vault.ca_cert.is_file() else True)
        try:
            return LocalStack(cfg).info()
        except StackError as exc:
            raise SecretsError(
                f"local stack: {exc.service} {exc.problem}" + (f" ({exc.hint})" if exc.hint else "")
            ) from exc

    @cached_property
    def vault_client(self):
        import hvac

        if self.env == LOCAL:
            import requests

            try:
                return self._local.operator_client()
            except requests.exceptions.ConnectionError as exc:
                raise SecretsError(f"Vault at {self._local.vault_addr} is unreachable") from exc
        addr, token = self.environ.get("VAULT_ADDR"), self.environ.get("VAULT_TOKEN")
        missing = [k for k, v in (("VAULT_ADDR", addr), ("VAULT_TOKEN", token)) if not v]
        if missing:
            raise SecretsError(
                f"{' and '.join(missing)} must be set for --env {self.env} "
                "(an operator token: `vault login -method=oidc role=spira-<env>-operator`)"
            )
        verify = self.environ.get("VAULT_CACERT") or True
        probe(addr, verify=verify)
        return hvac.Client(url=addr, token=token, verify=verify, timeout=30)

    @cached_property
    def secrets(self) -> HvacSecretStore:
        return HvacSecretStore(self.vault_client)

    # -- object store ----------------------------------------------------------------------------
    @property
    def engine(self) -> str:
        if self._engine:
            return self._engine
        return "seaweedfs" if self.env == LOCAL else cluster_engine(self.env)

    @cached_property
    def objectstore_secret(self) -> dict[str, str]:
        found = self.secrets.read(layout.secret_path(self.env, "objectstore"))
        if found is None:
            raise SecretsError(
                f"{layout.secret_ref(self.env, 'objectstore')} is missing: the object store's "
                "admin credential is written there by the Pulumi program (local: `spira stack up`)"
            )
        return found.data

    def _admin_client(self, service: str):
        """A boto3 client (s3 or iam) of the object store, as its admin."""
        import boto3

        from spira.stack.seaweed import REGION, S3_CONFIG

        s = self.objectstore_secret
        # a cluster's S3 API is https with a certificate from the platform CA, which is Vault's: the CA
        # the operator already names in VAULT_CACERT (boto3's own bundle would not trust it)
        https = s["endpoint"].lower().startswith("https://")
        return boto3.client(
            service,
            endpoint_url=s["endpoint"],
            verify=(self.environ.get("VAULT_CACERT") or None) if https else None,
            region_name=REGION,
            config=S3_CONFIG,
            aws_access_key_id=s["admin_access_key"],
            aws_secret_access_key=s["admin_secret_key"],
        )

    @cached_property
    def object_store(self) -> ObjectStoreAdmin:
        s = self.objectstore_secret
        if self.engine == "minio":
            from spira.secrets.minio_admin import MinioObjectStoreAdmin, minio_admin

            return MinioObjectStoreAdmin(
                minio_admin(s["endpoint"], s["admin_access_key"], s["admin_secret_key"]),
                self._admin_client("s3"),
            )
        # SeaweedFS answers the AWS IAM API on its S3 port.
        return IamObjectStoreAdmin(self._admin_client("s3"), self._admin_client("iam"))

    # -- where consumers run ---------------------------------------------------------------------
    def fleet(self, kube_context: str | None = None):
        """The local stack's registered processes and service control, or a cluster's Kubernetes API
        (kubectl with the operator's kubeconfig, `--context` when given)."""
        if self.env == LOCAL:
            from spira.secrets.fleet_local import LocalFleet
            from spira.stack import LocalStack, StackConfig

            return LocalFleet(LocalStack(StackConfig.load(self.environ.get("SPIRA_HOME"))), self.vault_client)
        from spira.secrets.fleet_kubernetes import KubernetesFleet, kubectl_runner

        return KubernetesFleet(kubectl_runner(kube_context))

    @cached_property
    def run_leases(self):
        """Batch runs' leases (spira_core.run_lease) in each service's own bucket, read as the store's admin."""
        from spira.secrets.fleet import LEASE_BUCKET_KEY, S3RunLeases
        from spira.secrets.seed import read_secret

        def bucket_of(service: str) -> str:
            secret = read_secret(self.vault_client, self.env, service) or {}
            return secret[LEASE_BUCKET_KEY[service]]

        return S3RunLeases(self._admin_client("s3"), bucket_of)

    def mlflow_users(self, tracking_uri: str | None = None):
        """MLflow's user API as the environment's admin (from `spira/<env>/mlflow-admin` in Vault), at
        `tracking_uri` when given (a cluster's in-cluster address is unreachable from outside: a
        port-forward's), else the environment's tracking URI."""
        from spira.secrets.mlflow_users import read_admin

        return read_admin(self.env, self.vault_client, tracking_uri or self.endpoints.mlflow_tracking_uri)

    @cached_property
    def endpoints(self) -> EnvironmentEndpoints:
        if self.env == LOCAL:
            return EnvironmentEndpoints(self._local.s3_endpoint, self._local.mlflow_uri)
        return EnvironmentEndpoints(self.objectstore_secret["endpoint"], cluster_mlflow_uri(self.env))
