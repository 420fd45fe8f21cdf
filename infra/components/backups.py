"""Backups and retention in a cluster, as CronJobs in the workload namespace, each with its own service
account, Vault role (infra/vault/layout.py) and object-store key (infra/environments.yaml):

- `spira-vault-backup` takes Vault's raft snapshot (its policy: its own secret and
  `sys/storage/raft/snapshot` read, nothing else) and adds it under the backups bucket's `vault/` (its key:
  PutObject there only); the bucket's lifecycle expires old snapshots (`retention`);
- `spira-archive-purge` deletes patients' uploads older than the environment's retention period (its key:
  ListBucket and DeleteObject under the archive's `uploads/` only), as `spira archive purge` does locally.

Each pod follows the workload contract: an init container with the Vault CLI (the release's image) logs in
with the projected service-account token as VAULT_ROLE, reads VAULT_SECRET_PATH and, for the backup, saves
the snapshot; the S3 key it read reaches the second container (MinIO's `mc`, which talks to either engine)
only through a memory-backed volume of this pod. The containers get exactly VAULT_ADDR, VAULT_ROLE and
VAULT_SECRET_PATH; Vault's CA is the `ca.crt` beside the token, as for every workload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra import contracts
from infra.environments import declared
from infra.retention import retention
from infra.vault import layout

NAMESPACE = declared().workload_namespace
TOKEN_DIR = "/var/run/secrets/vault"
CREDS_DIR = "/run/spira/creds"  # memory-backed: the S3 key never touches a disk
OUT_DIR = "/run/spira/out"
MC_ALIAS = "store"
UID = 10001
# Off the hour, so both jobs never meet Vault's or the store's own maintenance at :00.
SCHEDULES = {"vault-backup": "17 */6 * * *", "archive-purge": "43 3 * * *"}
LABELS = {"app.kubernetes.io/part-of": "spira", "app.kubernetes.io/managed-by": "pulumi"}


def login_script(snapshot: bool) -> str:
    """The Vault container's shell: log in as VAULT_ROLE with the projected token, read the S3 key from
    VAULT_SECRET_PATH into an `mc` config on the memory volume, and (backup) save the raft snapshot."""
    lines = [
        "set -eu",
        "umask 077",
        f"export VAULT_CACERT={TOKEN_DIR}/ca.crt",
        f'VAULT_TOKEN="$(vault write -field=token auth/{layout.JWT_MOUNT}/login role="$VAULT_ROLE" '
        f'jwt=@{TOKEN_DIR}/token)"',
        "export VAULT_TOKEN",
        'mount="${VAULT_SECRET_PATH%%/*}"',
        'path="${VAULT_SECRET_PATH#*/}"',
        'endpoint="$(vault kv get -mount="$mount" -field=s3_endpoint "$path")"',
        'access="$(vault kv get -mount="$mount" -field=s3_access_key "$path")"',
        'secret="$(vault kv get -mount="$mount" -field=s3_secret_key "$path")"',
        f"mkdir -p {CREDS_DIR}/mc/certs/CAs",
        # mc trusts the CAs in <config-dir>/certs/CAs: the platform CA, which signs the object store's https
        f"cp {TOKEN_DIR}/ca.crt {CREDS_DIR}/mc/certs/CAs/platform-ca.crt",
        'printf \'{"version":"10","aliases":{"' + MC_ALIAS + '":{"url":"%s","accessKey":"%s",'
        '"secretKey":"%s","api":"s3v4","path":"on"}}}\\n\' '
        f'"$endpoint" "$access" "$secret" > {CREDS_DIR}/mc/config.json',
    ]
    if snapshot:
        lines += [
            f"mkdir -p {OUT_DIR}",
            f'vault operator raft snapshot save "{OUT_DIR}/$(date -u +%Y%m%dT%H%M%SZ).snap"',
        ]
    return "\n".join(lines) + "\n"


def mc_args(job: str, environment: str) -> list[str]:
    """What the `mc` container does with the key the Vault container left it."""
    base = ["--config-dir", f"{CREDS_DIR}/mc"]
    if job == "vault-backup":
        bucket = declared().buckets(environment)["backups_bucket"]
        return [*base, "cp", "--recursive", f"{OUT_DIR}/", f"{MC_ALIAS}/{bucket}/vault/"]
    audio = retention().patient_audio(environment)
    return [
        *base,
        "rm",
        "--recursive",
        "--force",
        f"--older-than={audio.days}d",
        f"{MC_ALIAS}/{audio.bucket}/{audio.prefix}",
    ]


def _secure() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _image(name: str) -> str:
    """`repository:tag@sha256:...` from infra/charts.yaml (the tag alone where no digest could be had)."""
    return contracts.image(name)


def cron_job_manifest(job: str, environment: str) -> dict[str, Any]:
    """The CronJob as the API server receives it (also what the unit tests validate against the schema)."""
    service = layout.SERVICES[job]
    snapshot = job == "vault-backup"
    work = [{"name": "creds", "mountPath": CREDS_DIR}]
    if snapshot:
        work.append({"name": "out", "mountPath": OUT_DIR})
    volumes: list[dict[str, Any]] = [
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
                    {
                        "configMap": {
                            "name": declared().vault_ca.configmap,
                            "items": [{"key": declared().vault_ca.key, "path": "ca.crt"}],
                        }
                    },
                ]
            },
        },
        {"name": "creds", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
    ]
    if snapshot:
        volumes.append({"name": "out", "emptyDir": {"sizeLimit": "2Gi"}})
    resources = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    pod = {
        "serviceAccountName": service.service_account,
        "automountServiceAccountToken": False,  # the only token in the pod is the projected one for Vault
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": [
            {
                "name": "vault",
                "image": _image("vault"),
                "command": ["/bin/sh", "-c", login_script(snapshot)],
                "env": [
                    {"name": "VAULT_ADDR", "value": declared().service("vault").url},
                    {"name": "VAULT_ROLE", "value": layout.role_name(environment, job)},
                    {"name": "VAULT_SECRET_PATH", "value": layout.secret_ref(environment, job)},
                ],
                "volumeMounts": [{"name": "vault-token", "mountPath": TOKEN_DIR, "readOnly": True}, *work],
                "resources": resources,
                "securityContext": _secure(),
            }
        ],
        "containers": [
            {
                "name": "mc",
                "image": _image("minio-mc"),
                "args": mc_args(job, environment),
                "volumeMounts": work,
                "resources": resources,
                "securityContext": _secure(),
            }
        ],
        "volumes": volumes,
    }
    labels = {**LABELS, "app.kubernetes.io/name": service.service_account, "app.kubernetes.io/component": job}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": service.service_account, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "schedule": SCHEDULES[job],
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": 1800,
                    "ttlSecondsAfterFinished": 86400,
                    "template": {"metadata": {"labels": labels}, "spec": pod},
                }
            },
        },
    }


@dataclass(frozen=True)
class BackupJobsArgs:
    environment: str
    # The workload namespace and the vault-ca ConfigMap in it (infra/components/workloads.py).
    depends_on: list[pulumi.Resource]


class BackupJobs(pulumi.ComponentResource):
    def __init__(self, name: str, args: BackupJobsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:platform:BackupJobs", name, None, opts)
        for job in SCHEDULES:
            manifest = cron_job_manifest(job, args.environment)
            meta = manifest["metadata"]
            account = k8s.core.v1.ServiceAccount(
                f"{name}-{job}-sa",
                metadata={"name": meta["name"], "namespace": NAMESPACE, "labels": meta["labels"]},
                automount_service_account_token=False,
                opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
            )
            k8s.batch.v1.CronJob(
                f"{name}-{job}",
                metadata=meta,
                spec=manifest["spec"],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[account]),
            )
        self.register_outputs({"schedules": SCHEDULES})
