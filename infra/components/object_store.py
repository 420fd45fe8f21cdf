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

from infra import contracts, workflows
from infra.components import certificates
from infra.components.helm import pinned_release
from infra.components.vault import VaultSecrets
from infra.config import ObjectStoreSettings
from infra.environments import BUCKET_ACTIONS, Grant, declared
from infra.retention import retention
from infra.vault import layout

# Namespace, release and the S3 Service of each engine: infra/environments.yaml (services.objectstore).
NAMESPACE = declared().service("objectstore", "seaweedfs").namespace
RELEASE = str(declared().services["objectstore"]["release"])
ROOT_SECRET = "objectstore-root"
# MinIO's erasure coding needs at least 4 drives; below that it runs standalone.
MINIO_DISTRIBUTED_FROM = 4
# The S3 API's certificate (cert-manager, platform CA): its Secret, and where SeaweedFS's S3 pod mounts it.
TLS_SECRET = "objectstore-s3-tls"
SEAWEEDFS_TLS_DIR = "/etc/spira-tls"


# The Secret (in the store's namespace) holding the static users' secret keys, one key per user: MinIO's
# user job reads them from there (SeaweedFS gets them inside its identities config, the root Secret).
STATIC_USERS_SECRET = "objectstore-static-users"
# SeaweedFS's identity actions for the S3 actions a grant may name (Read/Write/List on bucket[/prefix*]).
SEAWEEDFS_ACTIONS = {"GetObject": "Read", "PutObject": "Write", "DeleteObject": "Write", "ListBucket": "List"}


@dataclass(frozen=True)
class StaticUser:
    """A user the store is configured with when it is installed, before any `spira secrets seed`: the
    program generates its key and needs it elsewhere in the cluster (Argo Workflows' artifact repository).
    Its permissions are exactly its grants, rendered for the engine."""

    role: str  # what it is for, the same in every environment: names its resources and Secret key
    name: str  # the user's name in the store (spira-<env>-<role>)
    grants: tuple[Grant, ...]


@dataclass(frozen=True)
class StaticKey:
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]


@dataclass(frozen=True)
class ObjectStoreArgs:
    environment: str
    settings: ObjectStoreSettings
    storage_class: str
    secrets: VaultSecrets | None
    # cert-manager's issuer: with it the S3 API serves https only (infra/environments.yaml scheme https)
    tls: certificates.PlatformTls | None = None
    static_users: tuple[StaticUser, ...] = ()


def seaweedfs_actions(grants: tuple[Grant, ...]) -> list[str]:
    """A static identity's actions: each granted action limited to the bucket, or to `bucket/prefix*` (a
    listing is checked against its `prefix` parameter, so a prefixed List only lists under it)."""
    out = []
    for g in grants:
        where = f"{g.bucket}/{g.prefix}*" if g.prefix else g.bucket
        out += [f"{SEAWEEDFS_ACTIONS[a]}:{where}" for a in g.actions]
    return sorted(set(out))


def minio_policy(name: str, grants: tuple[Grant, ...]) -> dict:
    """The chart's `policies` entry for a static user: object actions on `bucket/prefix*`, ListBucket on the
    bucket conditioned on `s3:prefix` when the grant has a prefix (the seeded users' IAM documents, in
    the chart's statement format)."""
    statements = []
    for g in grants:
        objects = [f"s3:{a}" for a in g.actions if a not in BUCKET_ACTIONS]
        buckets = [f"s3:{a}" for a in g.actions if a in BUCKET_ACTIONS]
        if objects:
            statements.append({"resources": [f"arn:aws:s3:::{g.bucket}/{g.prefix}*"], "actions": objects})
        if buckets:
            statement: dict = {"resources": [f"arn:aws:s3:::{g.bucket}"], "actions": buckets}
            if g.prefix:
                statement["conditions"] = [{"StringLike": json.dumps({"s3:prefix": [f"{g.prefix}*"]})[1:-1]}]
            statements.append(statement)
    return {"name": name, "statements": statements}


def minio_values(
    s: ObjectStoreSettings,
    storage_class: str,
    buckets: tuple[str, ...],
    versioned: frozenset[str] = frozenset(),
    tls_secret: str | None = None,
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
        # TLS with the Certificate's Secret (cert-manager's keys: tls.crt, tls.key); the chart's bucket job
        # trusts the CA in the same Secret (ca.crt).
        **(
            {
                "tls": {
                    "enabled": True,
                    "certSecret": tls_secret,
                    "publicCrt": "tls.crt",
                    "privateKey": "tls.key",
                },
                "trustedCertsSecret": tls_secret,
            }
            if tls_secret
            else {}
        ),
    }


def seaweedfs_values(
    s: ObjectStoreSettings,
    storage_class: str,
    buckets: tuple[str, ...],
    versioned: frozenset[str] = frozenset(),
    tls_secret: str | None = None,
    notification: str | None = None,
) -> dict:
    """`notification`: the filer's notification.toml (infra/workflows.py seaweedfs_notification)."""
    repo, tag = contracts.image_parts("seaweedfs")
    volume = {"type": "persistentVolumeClaim", "size": s.volume_size, "storageClass": storage_class}
    # The chart takes resources as a YAML string.
    resources = json.dumps({"requests": {"cpu": s.cpu, "memory": s.memory}})
    return {
        "global": {"imageName": repo, "enableReplication": s.replicas > 1},
        "image": {"tag": tag},
        "master": {"replicas": min(s.replicas, 3), "data": volume, "resources": resources},
        "volume": {"replicas": s.replicas, "dataDirs": [{"name": "data", **volume}], "resources": resources},
        "filer": {
            "replicas": min(s.replicas, 2),
            "data": volume,
            "resources": resources,
            **({"notificationConfig": notification} if notification else {}),
        },
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
            **(_seaweedfs_s3_tls(tls_secret) if tls_secret else {}),
        },
    }


def _seaweedfs_s3_tls(secret: str) -> dict:
    """`weed s3` with -cert.file/-key.file and no -port.https serves its one port over TLS only (chart
    4.0.401 without global.enableSecurity, which would add the chart's own CA and a second, plain port);
    the probes follow (this chart version reads the probe's `scheme` beside httpGet, newer ones inside)."""
    probe = {"scheme": "HTTPS", "httpGet": {"path": "/status", "scheme": "HTTPS"}}
    return {
        # the chart's default extra argument, kept
        "extraArgs": [
            "-idleTimeout=30",
            f"-cert.file={SEAWEEDFS_TLS_DIR}/tls.crt",
            f"-key.file={SEAWEEDFS_TLS_DIR}/tls.key",
        ],
        # the chart takes these two as YAML strings
        "extraVolumes": f"- name: s3-tls\n  secret:\n    secretName: {secret}\n",
        "extraVolumeMounts": f"- name: s3-tls\n  mountPath: {SEAWEEDFS_TLS_DIR}\n  readOnly: true\n",
        "readinessProbe": probe,
        "livenessProbe": probe,
    }


def s3_certificate(service: str) -> dict:
    """The S3 Service's Certificate (platform CA) into TLS_SECRET."""
    labels = {"app.kubernetes.io/name": "objectstore", "app.kubernetes.io/component": "s3"}
    return certificates.certificate(
        TLS_SECRET, NAMESPACE, certificates.service_dns_names(service, NAMESPACE), labels
    )


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

        # Each static user's key, generated like the root key; its secret half never appears in the values.
        self.static_keys: dict[str, StaticKey] = {}
        for user in args.static_users:
            self.static_keys[user.role] = StaticKey(
                random.RandomPassword(
                    f"{name}-{user.role}-access-key", length=20, special=False, opts=child
                ).result,
                random.RandomPassword(
                    f"{name}-{user.role}-secret-key", length=40, special=False, opts=child
                ).result,
            )

        tls_secret = TLS_SECRET if args.tls is not None else None
        static_secret = None
        if engine == "minio":
            data = {"rootUser": access_key.result, "rootPassword": secret_key.result}
            values = minio_values(args.settings, args.storage_class, buckets, versioned, tls_secret)
            if args.static_users:
                # the chart's user job creates each user with its policy, the secret key read from a Secret
                values["policies"] = [minio_policy(u.name, u.grants) for u in args.static_users]
                values["users"] = [
                    {
                        "accessKey": self.static_keys[u.role].access_key,
                        "existingSecret": STATIC_USERS_SECRET,
                        "existingSecretKey": u.role,
                        "policy": u.name,
                    }
                    for u in args.static_users
                ]
                static_secret = {u.role: self.static_keys[u.role].secret_key for u in args.static_users}
        else:
            keys = [access_key.result, secret_key.result]
            for user in args.static_users:
                keys += [self.static_keys[user.role].access_key, self.static_keys[user.role].secret_key]
            users = args.static_users
            identities = pulumi.Output.all(*keys).apply(
                lambda k: json.dumps(
                    {
                        "identities": [
                            {
                                "name": "admin",
                                "credentials": [{"accessKey": k[0], "secretKey": k[1]}],
                                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                            },
                            *(
                                {
                                    "name": u.name,
                                    "credentials": [{"accessKey": k[2 + 2 * i], "secretKey": k[3 + 2 * i]}],
                                    "actions": seaweedfs_actions(u.grants),
                                }
                                for i, u in enumerate(users)
                            ),
                        ]
                    }
                )
            )
            data = {"seaweedfs_s3_config": identities}
            # the filer posts new labelled data to the training EventSource (issue 20's labelled trigger)
            values = seaweedfs_values(
                args.settings,
                args.storage_class,
                buckets,
                versioned,
                tls_secret,
                notification=workflows.seaweedfs_notification(args.environment),
            )

        ns = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": NAMESPACE}, opts=child)
        root = k8s.core.v1.Secret(
            f"{name}-root",
            metadata={"name": ROOT_SECRET, "namespace": ns.metadata.name},
            string_data=data,
            opts=child,
        )
        before: list[pulumi.Resource] = [root]
        if static_secret:
            before.append(
                k8s.core.v1.Secret(
                    f"{name}-static-users",
                    metadata={"name": STATIC_USERS_SECRET, "namespace": ns.metadata.name},
                    string_data=static_secret,
                    opts=child,
                )
            )
        if args.tls is not None:
            address = declared().service("objectstore", engine)
            body = s3_certificate(address.service)
            before.append(args.tls.certificate(f"{name}-s3-tls", body, depends_on=[ns]))
        self.release = pinned_release(
            RELEASE,
            engine,
            NAMESPACE,
            values,
            pulumi.ResourceOptions(parent=self, depends_on=before),
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
