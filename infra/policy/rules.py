"""CrossGuard rules as plain functions: (resource type, properties, environment) -> violation messages.

The pack (__main__.py) hands them what the engine sees; the unit tests call them directly with passing
and failing properties, and run them over both stacks' offline plans. Properties use the engine's
camelCase names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from infra import contracts

Props = dict[str, Any]
Rule = Callable[[str, Props, str], list[str]]

RELEASE = "kubernetes:helm.sh/v3:Release"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
# An exact chart version: no range, no "latest", no empty value that lets Helm pick the newest.
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")
CLOUD_SEALS = ('seal "awskms"', 'seal "gcpckms"', 'seal "azurekeyvault"')
PUBLIC_ACLS = {"public-read", "public-read-write", "authenticated-read"}
DIGEST_REF = re.compile(r"@sha256:[0-9a-f]{64}$")
WORKLOADS = {
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:batch/v1:Job",
    "kubernetes:batch/v1:CronJob",
    "kubernetes:core/v1:Pod",
}


def _is_gpu_node_group(props: Props) -> bool:
    ami = str(props.get("amiType", ""))
    types = props.get("instanceTypes") or []
    return "NVIDIA" in ami or "GPU" in ami or any(t in contracts.GPUS_PER_INSTANCE for t in types)


def gpu_pools_tainted(typ: str, props: Props, environment: str) -> list[str]:
    """A GPU node group carries the contract's taint and label, so only GPU workloads land there."""
    if typ != NODE_GROUP or not _is_gpu_node_group(props):
        return []
    contract = contracts.gpu_pool()
    out = []
    if contract.eks_taint not in (props.get("taints") or []):
        out.append(f"GPU node group lacks the taint {contract.eks_taint} (infra/gpu_pool.yaml)")
    labels = props.get("labels") or {}
    if labels.get(contract.label_key) != contract.label_value:
        out.append(f"GPU node group lacks the label {contract.label_key}={contract.label_value}")
    return out


def chart_versions_pinned(typ: str, props: Props, environment: str) -> list[str]:
    if typ != RELEASE:
        return []
    version = str(props.get("version") or "")
    if not EXACT_VERSION.match(version):
        return [
            f"Helm release of chart {props.get('chart')!r} is not pinned to an exact version (got {version!r})"
        ]
    return []


def no_public_buckets(typ: str, props: Props, environment: str) -> list[str]:
    out = []
    if typ.startswith("aws:s3/bucket") and str(props.get("acl", "")) in PUBLIC_ACLS:
        out.append(f"S3 bucket has the public ACL {props['acl']!r}")
    if typ == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
        for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
            if props.get(flag) is not True:
                out.append(f"public access block leaves {flag} off")
    if typ == RELEASE:
        values = props.get("values") or {}
        if props.get("chart") == "minio":
            out += [
                f"MinIO bucket {b.get('name')!r} has policy {b.get('policy')!r}; buckets must be private (none)"
                for b in values.get("buckets") or []
                if b.get("policy", "none") != "none"
            ]
        if props.get("chart") == "seaweedfs":
            s3 = values.get("s3") or {}
            if s3.get("enabled") and s3.get("enableAuth") is not True:
                out.append("SeaweedFS S3 gateway runs without authentication: every bucket is public")
            out += [
                f"SeaweedFS bucket {b.get('name')!r} allows anonymous reads"
                for b in s3.get("createBuckets") or []
                if b.get("anonymousRead")
            ]
    return out


def vault_ha_and_auto_unseal(typ: str, props: Props, environment: str) -> list[str]:
    """Vault runs HA on raft with TLS and a cloud-KMS seal; production keeps a quorum through a loss."""
    if typ != RELEASE or props.get("chart") != "vault":
        return []
    values = props.get("values") or {}
    server = values.get("server") or {}
    ha = server.get("ha") or {}
    raft = ha.get("raft") or {}
    out = []
    if ha.get("enabled") is not True or raft.get("enabled") is not True:
        out.append("Vault is not HA with integrated storage (server.ha.enabled and server.ha.raft.enabled)")
    if not any(seal in str(raft.get("config", "")) for seal in CLOUD_SEALS):
        out.append("Vault has no cloud-KMS auto-unseal stanza in its raft config")
    if (values.get("global") or {}).get("tlsDisable") is not False:
        out.append("Vault serves without TLS (global.tlsDisable must be false)")
    if environment == "production" and int(ha.get("replicas") or 0) < 3:
        out.append(
            f"production Vault has {ha.get('replicas')} raft peers; a quorum that survives a loss needs 3+"
        )
    return out


def encryption_at_rest(typ: str, props: Props, environment: str) -> list[str]:
    if typ == "aws:rds/instance:Instance" and props.get("storageEncrypted") is not True:
        return ["RDS instance storage is not encrypted"]
    if typ == "aws:eks/cluster:Cluster":
        resources = (props.get("encryptionConfig") or {}).get("resources") or []
        if "secrets" not in resources:
            return ["EKS cluster does not envelope-encrypt Kubernetes Secrets with a KMS key"]
    if typ == "aws:ebs/volume:Volume" and props.get("encrypted") is not True:
        return ["EBS volume is not encrypted"]
    if (
        typ == "kubernetes:storage.k8s.io/v1:StorageClass"
        and props.get("provisioner") == "ebs.csi.aws.com"
        and (props.get("parameters") or {}).get("encrypted") != "true"
    ):
        return ["EBS StorageClass does not encrypt its volumes"]
    if typ == "aws:ecr/repository:Repository":
        configs = props.get("encryptionConfigurations") or []
        if configs and configs[0].get("encryptionType") not in ("KMS", "AES256"):
            return ["ECR repository is not encrypted"]
    return []


EKS_CLUSTER = "aws:eks/cluster:Cluster"
WORLD = {"0.0.0.0/0", "::/0"}


def eks_api_not_open_to_the_internet(typ: str, props: Props, environment: str) -> list[str]:
    """A public EKS API endpoint is allowed only for listed CIDRs, never for the whole internet. AWS's
    defaults are a public endpoint open to 0.0.0.0/0, so unset fields count as open."""
    if typ != EKS_CLUSTER:
        return []
    vpc = props.get("vpcConfig") or {}
    if vpc.get("endpointPublicAccess", True) is False:
        return []
    cidrs = list(vpc.get("publicAccessCidrs") or [])
    if not cidrs:
        return ["EKS API endpoint is public with no publicAccessCidrs: AWS opens it to 0.0.0.0/0"]
    if WORLD & set(cidrs):
        return [f"EKS API endpoint is public to the whole internet ({sorted(WORLD & set(cidrs))})"]
    return []


EFS_FILE_SYSTEM = "aws:efs/fileSystem:FileSystem"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"


def efs_encrypted(typ: str, props: Props, environment: str) -> list[str]:
    """An EFS file system (the archive spool: patients' uploads not yet archived) is encrypted at rest with
    its own KMS key, and every StorageClass of the EFS CSI driver mounts it over TLS. AWS's default is an
    unencrypted file system, and an encrypted one without `kmsKeyId` uses the account's shared AWS-managed
    key, whose use no key policy of ours limits."""
    if typ == EFS_FILE_SYSTEM:
        if props.get("encrypted") is not True:
            return ["EFS file system is not encrypted at rest (encrypted must be true)"]
        if not props.get("kmsKeyId"):
            return [
                "EFS file system is encrypted with the AWS-managed key: give it its own KMS key (kmsKeyId)"
            ]
    efs_class = typ == STORAGE_CLASS and props.get("provisioner") == "efs.csi.aws.com"
    if efs_class and "tls" not in (props.get("mountOptions") or []):
        return ["EFS StorageClass mounts without TLS: add mountOptions [tls] (encryption in transit)"]
    return []


def _image_refs(node: Any) -> list[str]:
    """Every image a pod spec or Helm values name: `image: ref`, or `*image: {repository, tag}` (a chart
    that joins them), or `image: {tag}` (a chart whose repository comes from elsewhere)."""
    refs: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key.lower().endswith("image"):
                if isinstance(value, str):
                    refs.append(value)
                elif isinstance(value, dict) and "tag" in value:
                    refs.append(f"{value.get('repository', '<chart image>')}:{value['tag']}")
            refs += _image_refs(value)
    elif isinstance(node, list):
        for item in node:
            refs += _image_refs(item)
    return refs


def images_by_digest(typ: str, props: Props, environment: str) -> list[str]:
    """Workloads and Helm values name images by digest (`repo@sha256:…` or `repo:tag@sha256:…`): a tag can be
    pushed again with other bytes. Only infra/charts.yaml's declared `digest_unavailable` images pass."""
    if typ == RELEASE:
        refs = _image_refs(props.get("values") or {})
    elif typ in WORKLOADS:
        refs = _image_refs(props.get("spec") or {})
    else:
        return []
    allowed = contracts.images_without_digest()
    return [
        f"image {ref!r} is referenced by tag only: pin it by digest (infra/charts.yaml)"
        for ref in refs
        if not DIGEST_REF.search(ref) and ref not in allowed
    ]


RULES: dict[str, tuple[str, Rule]] = {
    "gpu-pools-tainted": ("GPU node groups carry the GPU taint and label", gpu_pools_tainted),
    "chart-versions-pinned": ("Every Helm release pins an exact chart version", chart_versions_pinned),
    "no-public-buckets": ("No bucket is public", no_public_buckets),
    "vault-ha-auto-unseal": (
        "Vault is HA on raft, with TLS and cloud-KMS auto-unseal",
        vault_ha_and_auto_unseal,
    ),
    "encryption-at-rest": (
        "Databases, volumes, secrets and images are encrypted at rest",
        encryption_at_rest,
    ),
    "eks-api-not-open-to-the-internet": (
        "The EKS API is private, or public only to listed CIDRs (never 0.0.0.0/0)",
        eks_api_not_open_to_the_internet,
    ),
    "efs-encrypted": (
        "EFS file systems are encrypted at rest with their own KMS key and mounted over TLS",
        efs_encrypted,
    ),
    "images-by-digest": (
        "Workloads and Helm values name images by digest, never by tag alone",
        images_by_digest,
    ),
}


def check(typ: str, props: Props, environment: str) -> list[tuple[str, str]]:
    """Every rule's violations for one resource: (rule name, message)."""
    return [(name, msg) for name, (_, rule) in RULES.items() for msg in rule(typ, props, environment)]
