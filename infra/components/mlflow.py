"""MLflow tracking server: Postgres backend store (managed by the cloud), artifacts in the object store,
S3 credentials read from Vault at run time by the Vault agent (the layout's `mlflow` role and path).

Behind authentication (MLflow's `basic-auth` app: users and permissions in the same Postgres, the admin
password from pulumi-random, also written to Vault at `spira/<env>/mlflow-admin` from which `spira secrets
seed` creates each workload's MLflow user, no permission by default). Its NetworkPolicy (the training
jobs in, DNS, Vault, the object store and Postgres out) is rendered with every other one from
infra/environments.yaml `network` (infra/components/network.py)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_vault as vault

from infra import contracts
from infra.components import vault as vault_component
from infra.components.platform import Database
from infra.components.vault import VaultSecrets
from infra.config import MlflowSettings
from infra.environments import declared
from infra.vault import layout

# Namespace, Service name and port: infra/environments.yaml (services.mlflow).
ADDRESS = declared().service("mlflow")
PORT = ADDRESS.port
SERVICE = layout.SERVICES["mlflow"]
# Where the injected Vault agent expects the projected token (audience `vault`) for JWT auto-auth.
TOKEN_DIR = "/var/run/secrets/vault.hashicorp.com/serviceaccount"
# The Vault agent takes its CA from a Secret; it carries the name and key of the pods' ConfigMap.
VAULT_CA_SECRET = declared().vault_ca.configmap
AUTH_SECRET = "mlflow-auth"
AUTH_DIR = "/etc/mlflow-auth"
AUTH_FILE = "basic_auth.ini"
FLASK_SECRET_KEY = "flask_secret_key"
ADMIN_USER = "admin"
S3_ENV_FILE = "s3.env"


@dataclass(frozen=True)
class MlflowArgs:
    environment: str
    settings: MlflowSettings
    database: Database
    vault_ca_pem: pulumi.Input[str]
    # The workload namespace (created with the Vault CA ConfigMap by the Workloads component).
    namespace: pulumi.Input[str]
    # Where the admin credential is written for operators (`spira/<env>/mlflow-admin`), from which
    # `spira secrets seed` creates the workloads' MLflow users; None: not written (plans without Vault).
    secrets: VaultSecrets | None = None


def agent_template(environment: str) -> str:
    """Vault agent template: the layout's mlflow keys as shell exports (sourced before the server starts)."""
    path = f"{layout.KV_MOUNT}/data/{layout.secret_path(environment, 'mlflow')}"
    return (
        f'{{{{- with secret "{path}" -}}}}\n'
        'export AWS_ACCESS_KEY_ID="{{ .Data.data.s3_access_key }}"\n'
        'export AWS_SECRET_ACCESS_KEY="{{ .Data.data.s3_secret_key }}"\n'
        'export MLFLOW_S3_ENDPOINT_URL="{{ .Data.data.s3_endpoint }}"\n'
        'export ARTIFACTS_BUCKET="{{ .Data.data.artifacts_bucket }}"\n'
        # the object store's https certificate is the platform CA's (infra/components/certificates.py)
        f'export AWS_CA_BUNDLE="{TOKEN_DIR}/{declared().vault_ca.key}"\n'
        "{{- end }}\n"
    )


def auth_config(database_uri: str, admin_password: str) -> str:
    """MLflow's basic-auth configuration: users and permissions in the backend store's database (its own
    tables and migration history), nothing readable without a user, the generated admin password."""
    # configparser interpolates %: the URL-quoted database password must keep its % signs.
    return (
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = {database_uri.replace('%', '%%')}\n"
        f"admin_username = {ADMIN_USER}\n"
        f"admin_password = {admin_password.replace('%', '%%')}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )


def vault_agent_annotations(environment: str) -> dict[str, str]:
    secret = f"{layout.KV_MOUNT}/data/{layout.secret_path(environment, 'mlflow')}"
    return {
        "vault.hashicorp.com/agent-inject": "true",
        "vault.hashicorp.com/service": vault_component.ADDRESS.url,
        "vault.hashicorp.com/tls-secret": VAULT_CA_SECRET,
        "vault.hashicorp.com/ca-cert": f"/vault/tls/{declared().vault_ca.key}",
        "vault.hashicorp.com/auth-type": "jwt",
        "vault.hashicorp.com/auth-path": f"auth/{layout.JWT_MOUNT}",
        "vault.hashicorp.com/auth-config-path": f"{TOKEN_DIR}/token",
        "vault.hashicorp.com/agent-service-account-token-volume-name": "vault-token",
        "vault.hashicorp.com/role": layout.role_name(environment, "mlflow"),
        f"vault.hashicorp.com/agent-inject-secret-{S3_ENV_FILE}": secret,
        f"vault.hashicorp.com/agent-inject-template-{S3_ENV_FILE}": agent_template(environment),
    }


class Mlflow(pulumi.ComponentResource):
    def __init__(self, name: str, args: MlflowArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:platform:Mlflow", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace = args.namespace
        sa = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata={"name": SERVICE.service_account, "namespace": namespace},
            automount_service_account_token=False,
            opts=child,
        )
        db = args.database
        uri = pulumi.Output.all(db.host, db.port, db.password).apply(
            lambda a: (
                f"postgresql://{db.username}:{quote(a[2], safe='')}@{a[0]}:{a[1]}/{db.name}?sslmode=require"
            )
        )
        # The backend-store URI carries the generated database password; the layout's mlflow secret has no
        # database key, so it travels as a Kubernetes Secret (KMS-encrypted at rest by the cluster).
        db_secret = k8s.core.v1.Secret(
            f"{name}-db",
            metadata={"name": "mlflow-backend-store", "namespace": namespace},
            string_data={"uri": pulumi.Output.secret(uri)},
            opts=child,
        )
        admin_password = random.RandomPassword(f"{name}-admin-password", length=32, special=False, opts=child)
        # The auth app's forms are CSRF-protected: it refuses to start without this key, the same in
        # every replica.
        flask_key = random.RandomPassword(f"{name}-flask-secret-key", length=48, special=False, opts=child)
        auth_secret = k8s.core.v1.Secret(
            f"{name}-auth",
            metadata={"name": AUTH_SECRET, "namespace": namespace},
            string_data={
                AUTH_FILE: pulumi.Output.secret(
                    pulumi.Output.all(uri, admin_password.result).apply(lambda a: auth_config(a[0], a[1]))
                ),
                FLASK_SECRET_KEY: pulumi.Output.secret(flask_key.result),
            },
            opts=child,
        )
        if args.secrets is not None:
            vault.kv.SecretV2(
                f"{name}-vault-admin",
                mount=args.secrets.mount.mount,
                name=layout.secret_path(args.environment, "mlflow-admin"),
                data_json=pulumi.Output.json_dumps(
                    {"username": ADMIN_USER, "password": admin_password.result}
                ),
                opts=pulumi.ResourceOptions(parent=self, provider=args.secrets.provider),
            )
        k8s.core.v1.Secret(
            f"{name}-vault-ca",
            metadata={"name": VAULT_CA_SECRET, "namespace": namespace},
            string_data={declared().vault_ca.key: args.vault_ca_pem},
            opts=child,
        )
        labels = {"app.kubernetes.io/name": "mlflow", "app.kubernetes.io/part-of": "spira"}
        command = (
            f". /vault/secrets/{S3_ENV_FILE} && exec mlflow server --app-name basic-auth"
            f" --host 0.0.0.0 --port {PORT}"
            ' --backend-store-uri "$MLFLOW_BACKEND_STORE_URI"'
            ' --artifacts-destination "s3://$ARTIFACTS_BUCKET" --serve-artifacts'
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-server",
            metadata={"name": "mlflow", "namespace": namespace, "labels": labels},
            spec={
                "replicas": args.settings.replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels, "annotations": vault_agent_annotations(args.environment)},
                    "spec": {
                        "serviceAccountName": sa.metadata.name,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "volumes": [
                            {
                                "name": "vault-token",
                                "projected": {
                                    "sources": [
                                        {
                                            "serviceAccountToken": {
                                                "audience": layout.AUDIENCE,
                                                "expirationSeconds": 600,
                                                "path": "token",
                                            }
                                        },
                                        # the platform CA, which the object store's certificate chains to
                                        {
                                            "secret": {
                                                "name": VAULT_CA_SECRET,
                                                "items": [
                                                    {
                                                        "key": declared().vault_ca.key,
                                                        "path": declared().vault_ca.key,
                                                    }
                                                ],
                                            }
                                        },
                                    ]
                                },
                            },
                            {"name": "tmp", "emptyDir": {}},
                            {"name": "auth", "secret": {"secretName": auth_secret.metadata.name}},
                        ],
                        "containers": [
                            {
                                "name": "mlflow",
                                "image": contracts.image("mlflow"),
                                "command": ["/bin/sh", "-c", command],
                                "env": [
                                    {
                                        "name": "MLFLOW_BACKEND_STORE_URI",
                                        "valueFrom": {
                                            "secretKeyRef": {"name": db_secret.metadata.name, "key": "uri"}
                                        },
                                    },
                                    {"name": "HOME", "value": "/tmp"},
                                    {"name": "MLFLOW_AUTH_CONFIG_PATH", "value": f"{AUTH_DIR}/{AUTH_FILE}"},
                                    {
                                        "name": "MLFLOW_FLASK_SERVER_SECRET_KEY",
                                        "valueFrom": {
                                            "secretKeyRef": {
                                                "name": auth_secret.metadata.name,
                                                "key": FLASK_SECRET_KEY,
                                            }
                                        },
                                    },
                                ],
                                "ports": [{"name": "http", "containerPort": PORT}],
                                "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}},
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": "http"},
                                    "initialDelaySeconds": 30,
                                },
                                "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [
                                    {"name": "vault-token", "mountPath": TOKEN_DIR, "readOnly": True},
                                    {"name": "tmp", "mountPath": "/tmp"},
                                    {"name": "auth", "mountPath": AUTH_DIR, "readOnly": True},
                                ],
                            }
                        ],
                    },
                },
            },
            opts=child,
        )
        service = k8s.core.v1.Service(
            f"{name}-svc",
            metadata={"name": ADDRESS.service, "namespace": namespace, "labels": labels},
            spec={"selector": labels, "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]},
            opts=child,
        )
        self.tracking_uri = pulumi.Output.concat(
            "http://", service.metadata.name, ".", namespace, ".svc.cluster.local:", str(PORT)
        )
        self.register_outputs({"trackingUri": self.tracking_uri})
