"""The stack's settings, read once from Pulumi config into typed values.

Every key and every default is declared in Pulumi.yaml; this module only requires them (no default is
repeated here), so a key missing from both Pulumi.yaml and the stack file fails loudly.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.contracts import worker_max_pods
from infra.environments import declared

PROJECT = "spira-platform"
ENGINES = ("minio", "seaweedfs")


@dataclass(frozen=True)
class Pool:
    instance_types: tuple[str, ...]
    min_nodes: int
    max_nodes: int


@dataclass(frozen=True)
class GpuPool:
    instance_types: tuple[str, ...]
    min_nodes: int
    model_replicas: int
    gpus_per_pod: int
    disk_gb: int
    # the queue workers at their most (infra.contracts.worker_max_pods: their ScaledObject and Rollout)
    worker_max_pods: int = 0


@dataclass(frozen=True)
class ObjectStoreSettings:
    engine: str
    replicas: int
    volume_size: str
    cpu: str
    memory: str


@dataclass(frozen=True)
class VaultSettings:
    replicas: int
    storage_size: str
    address: str
    configured: bool
    # The identity provider operators log in with (`auth/oidc`).
    oidc_issuer: str
    oidc_client_id: str
    oidc_client_secret: pulumi.Output[str]


@dataclass(frozen=True)
class MlflowSettings:
    replicas: int
    db_instance_class: str
    db_storage_gb: int
    db_multi_az: bool


@dataclass(frozen=True)
class StackConfig:
    environment: str
    domain: str
    repo_url: str
    region: str
    kubernetes_version: str
    vpc_cidr: str
    availability_zones: tuple[str, ...]
    public_access_cidrs: tuple[str, ...]
    system_pool: Pool
    gpu_pool: GpuPool
    object_store: ObjectStoreSettings
    vault: VaultSettings
    mlflow: MlflowSettings
    registry_repositories: tuple[str, ...]
    prometheus_volume_size: str
    nats_volume_size: str
    # the token the training workflow's candidate step sends repoUrl's repository_dispatch with
    candidate_dispatch_token: pulumi.Output[str]

    @property
    def is_production(self) -> bool:
        return self.environment == "production"


def _strings(cfg: pulumi.Config, key: str) -> tuple[str, ...]:
    value = cfg.require_object(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"config {PROJECT}:{key} must be a list of strings, got {value!r}")
    return tuple(value)


def load(cfg: pulumi.Config | None = None, aws_cfg: pulumi.Config | None = None) -> StackConfig:
    """Read the stack's settings; raises on a missing key or an unknown object-store engine."""
    cfg = cfg or pulumi.Config(PROJECT)
    aws_cfg = aws_cfg or pulumi.Config("aws")
    engine = cfg.require("objectStore")
    if engine not in ENGINES:
        raise ValueError(f"config {PROJECT}:objectStore must be one of {', '.join(ENGINES)}, got {engine!r}")
    environment = cfg.require("environment")
    # A stack is one of the clusters infra/environments.yaml declares (its branch, overlay, Vault layout).
    try:
        declared().cluster(environment)
    except ValueError as exc:
        raise ValueError(f"config {PROJECT}:environment: {exc}") from None
    return StackConfig(
        environment=environment,
        domain=cfg.require("domain"),
        repo_url=cfg.require("repoUrl"),
        region=aws_cfg.require("region"),
        kubernetes_version=cfg.require("kubernetesVersion"),
        vpc_cidr=cfg.require("vpcCidr"),
        availability_zones=_strings(cfg, "availabilityZones"),
        public_access_cidrs=_strings(cfg, "publicAccessCidrs"),
        system_pool=Pool(
            instance_types=_strings(cfg, "systemInstanceTypes"),
            min_nodes=cfg.require_int("systemMinNodes"),
            max_nodes=cfg.require_int("systemMaxNodes"),
        ),
        gpu_pool=GpuPool(
            instance_types=_strings(cfg, "gpuInstanceTypes"),
            min_nodes=cfg.require_int("gpuMinNodes"),
            model_replicas=cfg.require_int("modelReplicas"),
            gpus_per_pod=cfg.require_int("gpusPerPod"),
            disk_gb=cfg.require_int("gpuDiskGb"),
            worker_max_pods=worker_max_pods(environment),
        ),
        object_store=ObjectStoreSettings(
            engine=engine,
            replicas=cfg.require_int("objectStoreReplicas"),
            volume_size=cfg.require("objectStoreVolumeSize"),
            cpu=cfg.require("objectStoreCpu"),
            memory=cfg.require("objectStoreMemory"),
        ),
        vault=VaultSettings(
            replicas=cfg.require_int("vaultReplicas"),
            storage_size=cfg.require("vaultStorageSize"),
            address=cfg.require("vaultAddress"),
            configured=cfg.require_bool("vaultConfigured"),
            oidc_issuer=cfg.require("operatorOidcIssuer"),
            oidc_client_id=cfg.require("operatorOidcClientId"),
            oidc_client_secret=cfg.require_secret("operatorOidcClientSecret"),
        ),
        mlflow=MlflowSettings(
            replicas=cfg.require_int("mlflowReplicas"),
            db_instance_class=cfg.require("mlflowDbInstanceClass"),
            db_storage_gb=cfg.require_int("mlflowDbStorageGb"),
            db_multi_az=cfg.require_bool("mlflowDbMultiAz"),
        ),
        registry_repositories=_strings(cfg, "registryRepositories"),
        prometheus_volume_size=cfg.require("prometheusVolumeSize"),
        nats_volume_size=cfg.require("natsVolumeSize"),
        candidate_dispatch_token=cfg.require_secret("candidateDispatchToken"),
    )
