"""The in-cluster S3 object store, MinIO or SeaweedFS by config, with generated root credentials.

No chart default credential is ever used: the root key pair comes from pulumi-random, reaches the server
through a Kubernetes Secret, and is stored in Vault at the `objectstore` service path for operators
(who mint per-service keys with it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_vault as vault

from infra import contracts
from infra.components.helm import pinned_release
from infra.components.vault import VaultSecrets
from infra.config import ObjectStoreSettings
from infra.environments import declared
from infra.retention import retention
from infra.vault import layout

# Namespace, release and the S3 Service of each engine: infra/environments.yaml (services.objectstore).
NAMESPACE = declared().service("objectstore", "seaweedfs").namespace
RELEASE = str(declared().services["objectstore"]["release"])
ROOT_SECRET = "objectstore-root"
# MinIO's erasure coding needs at least 4 drives; below that it runs standalone.
MINIO_DISTRIBUTED_FROM = 4


@dataclass(frozen=True)
class ObjectStoreArgs:
    environment: str
    settings: ObjectStoreSettings
    storage_class: str
    secrets: VaultSecrets | None


def minio_values(
    s: ObjectStoreSettings,
    storage_class: str,
    buckets: tuple[str, ...],
    versioned: frozenset[str] = frozenset(),
) -> dict:
    repo, tag = contracts.image_parts("minio")
    mc_repo, mc_tag = contracts.image_parts("minio-mc")
    return {
        "fullnameOverride": RELEASE,
        "mode": "distributed" if s.replicas >= MINIO_DISTRIBUTED_FROM else "standalone",
        "replicas": s.replicas,
        "image": {"repository": repo, "tag": tag},
        "mcImage": {"repository": mc_repo, "tag": mc_tag},
        # Root credentials only from the generated Secret: no rootUser/rootPassword value in the release.
        "existingSecret": ROOT_SECRET,
        "persistence": {"enabled": True, "size": s.volume_size, "storageClass": storage_class},
        "resources": {"requests": {"cpu": s.cpu, "memory": s.memory}},
        # Versioning as declared (infra/environments.yaml retention): never on the archive, where a deleted
        # upload must be gone; `spira secrets seed` adds the lifecycle rules through S3.
        "buckets": [
            {"name": b, "policy": "none", "purge": False, "versioning": b in versioned} for b in buckets
        ],
        "users": [],
        "svcaccts": [],
        "policies": [],
    }


def seaweedfs_values(
    s: ObjectStoreSettings,
    storage_class: str,
    buckets: tuple[str, ...],
    versioned: frozenset[str] = frozenset(),
) -> dict:
    repo, tag = contracts.image_parts("seaweedfs")
    volume = {"type": "persistentVolumeClaim", "size": s.volume_size, "storageClass": storage_class}
    # The chart takes resources as a YAML string.
    resources = json.dumps({"requests": {"cpu": s.cpu, "memory": s.memory}})
    return {
        "global": {"imageName": repo, "enableReplication": s.replicas > 1},
        "image": {"tag": tag},
        "master": {"replicas": min(s.replicas, 3), "data": volume, "resources": resources},
        "volume": {"replicas": s.replicas, "dataDirs": [{"name": "data", **volume}], "resources": resources},
        "filer": {"replicas": min(s.replicas, 2), "data": volume, "resources": resources},
        "s3": {
            "enabled": True,
            "port": declared().service("objectstore", "seaweedfs").port,
            # Every request is signed with a configured identity; there is no anonymous access.
            "enableAuth": True,
            "existingConfigSecret": ROOT_SECRET,
            # Versioning as declared (the chart's bucket hook; the key was not rendered here), lifecycle
            # rules from `spira secrets seed` through S3.
            "createBuckets": [
                {"name": b, "anonymousRead": False, **({"versioning": "Enabled"} if b in versioned else {})}
                for b in buckets
            ],
        },
    }


class ObjectStore(pulumi.ComponentResource):
    def __init__(self, name: str, args: ObjectStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:platform:ObjectStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        engine = args.settings.engine
        access_key = random.RandomPassword(f"{name}-root-access-key", length=20, special=False, opts=child)
        secret_key = random.RandomPassword(f"{name}-root-secret-key", length=40, special=False, opts=child)
        self.endpoint = declared().service("objectstore", engine).url
        # The buckets every workload's secret names (the seeding reads the same declaration).
        buckets = tuple(declared().buckets(args.environment).values())
        versioned = frozenset(b.bucket for b in retention().buckets(args.environment) if b.versioned)

        if engine == "minio":
            data = {"rootUser": access_key.result, "rootPassword": secret_key.result}
            values = minio_values(args.settings, args.storage_class, buckets, versioned)
        else:
            identities = pulumi.Output.all(access_key.result, secret_key.result).apply(
                lambda k: json.dumps(
                    {
                        "identities": [
                            {
                                "name": "admin",
                                "credentials": [{"accessKey": k[0], "secretKey": k[1]}],
                                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                            }
                        ]
                    }
                )
            )
            data = {"seaweedfs_s3_config": identities}
            values = seaweedfs_values(args.settings, args.storage_class, buckets, versioned)

        ns = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": NAMESPACE}, opts=child)
        root = k8s.core.v1.Secret(
            f"{name}-root",
            metadata={"name": ROOT_SECRET, "namespace": ns.metadata.name},
            string_data=data,
            opts=child,
        )
        self.release = pinned_release(
            RELEASE,
            engine,
            NAMESPACE,
            values,
            pulumi.ResourceOptions(parent=self, depends_on=[root]),
        )
        if args.secrets is not None:
            vault.kv.SecretV2(
                f"{name}-vault-admin",
                mount=args.secrets.mount.mount,
                name=layout.secret_path(args.environment, "objectstore"),
                data_json=pulumi.Output.json_dumps(
                    {
                        "admin_access_key": access_key.result,
                        "admin_secret_key": secret_key.result,
                        "endpoint": self.endpoint,
                    }
                ),
                opts=pulumi.ResourceOptions(parent=self, provider=args.secrets.provider),
            )
        self.register_outputs({"endpoint": self.endpoint, "engine": engine})
