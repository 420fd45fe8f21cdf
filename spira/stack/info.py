"""What a running local stack offers its users: addresses, credentials and helpers to reach it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra.vault import layout
from spira.stack.signer import LocalJwtSigner
from spira_core.vault.settings import vault_ca_path


@dataclass(frozen=True)
class StackInfo:
    home: Path
    vault_addr: str
    vault_root_token: str
    s3_endpoint: str
    s3_access_key: str  # the object store's admin identity
    s3_secret_key: str
    mlflow_uri: str
    registry: str | None  # host:port of the loopback registry, when installed
    env_name: str = "local"
    # MLflow's admin (username, password): the operator's MLflow identity on the local stack.
    mlflow_admin: tuple[str, str] | None = None
    nats_url: str | None = None  # the queue (NATS JetStream)
    prometheus_url: str | None = None  # Prometheus (same scrape job and alert rules as the clusters')

    @property
    def signer(self) -> LocalJwtSigner:
        return LocalJwtSigner.of_stack(self.home)

    @property
    def vault_ca(self) -> Path:
        """The private CA OpenBao's certificate is signed by; where the stack's workloads find it."""
        return vault_ca_path(self.signer.private_key_path)

    def mint_jwt(
        self, subject: str, audience: str = layout.AUDIENCE, ttl_s: int = 600, **claims: object
    ) -> str:
        return self.signer.mint(subject, audience=audience, ttl_s=ttl_s, **claims)

    def service_jwt(self, service: str, ttl_s: int = 600) -> str:
        """A token shaped like the service account token a cluster would project for `service`."""
        return self.mint_jwt(layout.SERVICES[service].subject, ttl_s=ttl_s)

    def vault_client(self, token: str | None = None):
        import hvac

        return hvac.Client(
            url=self.vault_addr, token=token or self.vault_root_token, verify=str(self.vault_ca), timeout=30
        )

    def operator_client(self):
        """A Vault client logged in with the operator role (no root), as `spira secrets` uses."""
        import hvac

        client = hvac.Client(url=self.vault_addr, verify=str(self.vault_ca), timeout=30)
        client.auth.jwt.jwt_login(
            role=layout.operator_role_name(self.env_name),
            jwt=self.mint_jwt(layout.operator_subject(self.env_name)),
            path=layout.JWT_MOUNT,
        )
        return client

    def s3_client(self, access_key: str | None = None, secret_key: str | None = None):
        import boto3

        from spira.stack.seaweed import REGION, S3_CONFIG

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name=REGION,
            config=S3_CONFIG,
            aws_access_key_id=access_key or self.s3_access_key,
            aws_secret_access_key=secret_key or self.s3_secret_key,
        )

    def service_env(self, service: str) -> dict[str, str]:
        """The only variables a workload receives, plus the local stand-in for its projected token."""
        return {
            "VAULT_ADDR": self.vault_addr,
            "VAULT_ROLE": layout.role_name(self.env_name, service),
            "VAULT_SECRET_PATH": f"{layout.KV_MOUNT}/{layout.secret_path(self.env_name, service)}",
            # Local only: mint the service-account-like JWT with the stack's key instead of reading a
            # projected token file (clusters set nothing here and use /var/run/secrets/vault/token).
            # The Vault CA is found beside the key, as it is beside the projected token in a cluster.
            "VAULT_JWT_SIGNER_KEY": str(self.signer.private_key_path),
            "VAULT_JWT_SUBJECT": layout.SERVICES[service].subject,
        }

    def mlflow_operator_env(self) -> dict[str, str]:
        """MLflow's basic-auth credentials of the operator (the local admin), as MLflow's client reads them."""
        if not self.mlflow_admin:
            return {}
        return {
            "MLFLOW_TRACKING_USERNAME": self.mlflow_admin[0],
            "MLFLOW_TRACKING_PASSWORD": self.mlflow_admin[1],
        }

    def shell_env(self) -> dict[str, str]:
        env = {
            "SPIRA_HOME": str(self.home),
            "VAULT_ADDR": self.vault_addr,
            "VAULT_TOKEN": self.vault_root_token,
            "VAULT_CACERT": str(self.vault_ca),  # the bao CLI and hvac trust the stack's CA through it
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": self.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3_secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_TRACKING_URI": self.mlflow_uri,
        }
        env |= self.mlflow_operator_env()
        if self.registry:
            env["SPIRA_REGISTRY"] = self.registry
        if self.nats_url:
            env["NATS_URL"] = self.nats_url
        if self.prometheus_url:
            env["PROMETHEUS_URL"] = self.prometheus_url
        return env
