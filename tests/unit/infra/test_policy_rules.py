"""The CrossGuard rules, called directly: each passes a compliant resource and fails a broken one."""

from __future__ import annotations

import pytest

from infra.policy import rules

GPU_GROUP = {
    "amiType": "AL2023_x86_64_NVIDIA",
    "instanceTypes": ["g5.xlarge"],
    "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}],
    "labels": {"spira.dev/pool": "gpu"},
}
VAULT_VALUES = {
    "global": {"tlsDisable": False},
    "server": {
        "ha": {"enabled": True, "replicas": 3, "raft": {"enabled": True, "config": 'seal "awskms" {}'}}
    },
}


def vault_release(**server_ha: object) -> dict:
    values = {
        "global": dict(VAULT_VALUES["global"]),
        "server": {"ha": {**VAULT_VALUES["server"]["ha"], **server_ha}},
    }
    return {"chart": "vault", "version": "0.31.0", "values": values}


def test_a_tainted_and_labelled_gpu_pool_passes() -> None:
    assert rules.gpu_pools_tainted(rules.NODE_GROUP, GPU_GROUP, "production") == []


def test_a_gpu_pool_without_taint_fails() -> None:
    found = rules.gpu_pools_tainted(rules.NODE_GROUP, {**GPU_GROUP, "taints": []}, "staging")
    assert len(found) == 1 and "lacks the taint" in found[0]


def test_a_gpu_pool_found_by_instance_type_alone_still_needs_its_label() -> None:
    props = {**GPU_GROUP, "amiType": "AL2023_x86_64_STANDARD", "labels": {}}
    assert any("lacks the label" in m for m in rules.gpu_pools_tainted(rules.NODE_GROUP, props, "staging"))


def test_a_cpu_pool_needs_no_gpu_taint() -> None:
    cpu = {"amiType": "AL2023_x86_64_STANDARD", "instanceTypes": ["m7i.large"], "labels": {}}
    assert rules.gpu_pools_tainted(rules.NODE_GROUP, cpu, "production") == []


def test_an_exactly_pinned_chart_passes_and_a_floating_one_fails() -> None:
    assert (
        rules.chart_versions_pinned(rules.RELEASE, {"chart": "vault", "version": "0.31.0"}, "staging") == []
    )
    for floating in ("", None, "latest", "~0.31", "^9.0.0", ">=1.0.0", "0.31"):
        found = rules.chart_versions_pinned(rules.RELEASE, {"chart": "vault", "version": floating}, "staging")
        assert len(found) == 1, floating


def test_private_buckets_pass_and_public_ones_fail() -> None:
    minio_ok = {"chart": "minio", "values": {"buckets": [{"name": "a", "policy": "none"}]}}
    minio_public = {"chart": "minio", "values": {"buckets": [{"name": "a", "policy": "download"}]}}
    assert rules.no_public_buckets(rules.RELEASE, minio_ok, "staging") == []
    assert "'a'" in rules.no_public_buckets(rules.RELEASE, minio_public, "staging")[0]
    sw_ok = {
        "chart": "seaweedfs",
        "values": {"s3": {"enabled": True, "enableAuth": True, "createBuckets": []}},
    }
    sw_open = {"chart": "seaweedfs", "values": {"s3": {"enabled": True, "enableAuth": False}}}
    sw_anon = {
        "chart": "seaweedfs",
        "values": {
            "s3": {
                "enabled": True,
                "enableAuth": True,
                "createBuckets": [{"name": "b", "anonymousRead": True}],
            }
        },
    }
    assert rules.no_public_buckets(rules.RELEASE, sw_ok, "staging") == []
    assert rules.no_public_buckets(rules.RELEASE, sw_open, "staging")
    assert rules.no_public_buckets(rules.RELEASE, sw_anon, "staging")
    assert rules.no_public_buckets("aws:s3/bucketV2:BucketV2", {"acl": "public-read"}, "staging")
    assert rules.no_public_buckets("aws:s3/bucketV2:BucketV2", {"acl": "private"}, "staging") == []
    half_block = {
        "blockPublicAcls": True,
        "blockPublicPolicy": False,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
    }
    assert rules.no_public_buckets("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", half_block, "x")


def test_ha_vault_with_kms_unseal_passes_in_production() -> None:
    assert rules.vault_ha_and_auto_unseal(rules.RELEASE, vault_release(), "production") == []


def test_vault_without_auto_unseal_fails() -> None:
    props = vault_release(raft={"enabled": True, "config": 'storage "raft" {}'})
    assert any("auto-unseal" in m for m in rules.vault_ha_and_auto_unseal(rules.RELEASE, props, "staging"))


def test_vault_without_ha_fails() -> None:
    props = vault_release(enabled=False)
    assert any("not HA" in m for m in rules.vault_ha_and_auto_unseal(rules.RELEASE, props, "staging"))


def test_a_single_peer_vault_fails_in_production_only() -> None:
    props = vault_release(replicas=1)
    assert rules.vault_ha_and_auto_unseal(rules.RELEASE, props, "staging") == []
    assert any("quorum" in m for m in rules.vault_ha_and_auto_unseal(rules.RELEASE, props, "production"))


def test_vault_without_tls_fails() -> None:
    props = vault_release()
    props["values"]["global"]["tlsDisable"] = True
    assert any("TLS" in m for m in rules.vault_ha_and_auto_unseal(rules.RELEASE, props, "staging"))


def test_encrypted_storage_passes_and_unencrypted_fails() -> None:
    rds = "aws:rds/instance:Instance"
    assert rules.encryption_at_rest(rds, {"storageEncrypted": True}, "x") == []
    assert rules.encryption_at_rest(rds, {"storageEncrypted": False}, "x")
    eks = "aws:eks/cluster:Cluster"
    assert rules.encryption_at_rest(eks, {"encryptionConfig": {"resources": ["secrets"]}}, "x") == []
    assert rules.encryption_at_rest(eks, {}, "x")
    sc = "kubernetes:storage.k8s.io/v1:StorageClass"
    assert (
        rules.encryption_at_rest(
            sc, {"provisioner": "ebs.csi.aws.com", "parameters": {"encrypted": "true"}}, "x"
        )
        == []
    )
    assert rules.encryption_at_rest(
        sc, {"provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3"}}, "x"
    )
    assert rules.encryption_at_rest("aws:ebs/volume:Volume", {"encrypted": False}, "x")


def test_check_names_the_rule_that_failed() -> None:
    assert rules.check(rules.NODE_GROUP, {**GPU_GROUP, "taints": []}, "staging")[0][0] == "gpu-pools-tainted"


def test_the_policy_pack_config_files_name_every_rule_with_their_environment() -> None:
    import json

    from infra.contracts import INFRA_DIR

    for env in ("staging", "production"):
        doc = json.loads((INFRA_DIR / "policy" / f"config.{env}.json").read_text())
        assert doc == {name: {"environment": env} for name in rules.RULES}


def eks(**vpc: object) -> dict:
    return {"vpcConfig": {"endpointPrivateAccess": True, **vpc}}


def test_a_private_eks_api_or_one_public_to_listed_cidrs_passes() -> None:
    assert (
        rules.eks_api_not_open_to_the_internet(
            rules.EKS_CLUSTER, eks(endpointPublicAccess=False), "production"
        )
        == []
    )
    listed = eks(endpointPublicAccess=True, publicAccessCidrs=["203.0.113.0/24", "198.51.100.7/32"])
    assert rules.eks_api_not_open_to_the_internet(rules.EKS_CLUSTER, listed, "staging") == []


@pytest.mark.parametrize(
    "vpc",
    [
        {"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]},
        {"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24", "::/0"]},
        {"endpointPublicAccess": True},  # AWS's default CIDR list is 0.0.0.0/0
        {},  # AWS's default endpoint is public, to 0.0.0.0/0
    ],
)
def test_an_eks_api_open_to_the_internet_fails(vpc: dict) -> None:
    found = rules.eks_api_not_open_to_the_internet(rules.EKS_CLUSTER, eks(**vpc), "staging")
    assert len(found) == 1 and ("0.0.0.0/0" in found[0] or "::/0" in found[0]), found
    assert ("eks-api-not-open-to-the-internet", found[0]) in rules.check(
        rules.EKS_CLUSTER, eks(**vpc), "staging"
    )
