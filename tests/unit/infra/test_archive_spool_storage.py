"""The archive spool's volume (argocd/base/model-persistentvolumeclaim.yaml): a storage class every model
pod can mount at once, encrypted at rest and in transit, reachable from the cluster only, never deleted
with its claim."""

from __future__ import annotations

from infra.components.aws.spool import SPOOL_STORAGE_CLASS, SPOOL_UID
from infra.offline import Plan
from tests.fakes.infra import where

STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"


def test_the_spool_storage_class_is_efs_with_access_points_owned_by_the_model_user(stack_plan: Plan) -> None:
    (sc,) = [
        r for r in stack_plan.of_type(STORAGE_CLASS) if r.inputs["metadata"]["name"] == SPOOL_STORAGE_CLASS
    ]
    assert sc.inputs["provisioner"] == "efs.csi.aws.com", where(sc)
    assert sc.inputs["parameters"]["provisioningMode"] == "efs-ap", where(sc)
    assert sc.inputs["parameters"]["uid"] == SPOOL_UID == "10001", where(sc)
    assert sc.inputs["parameters"]["directoryPerms"] == "700", where(sc)
    assert sc.inputs["reclaimPolicy"] == "Retain", f"{where(sc)} deletes answered uploads with the claim"
    assert "tls" in sc.inputs["mountOptions"], f"{where(sc)} mounts without encryption in transit"


def test_the_spool_file_system_is_encrypted_with_its_own_key_and_mountable_from_the_cluster_only(
    stack_plan: Plan,
) -> None:
    (fs,) = stack_plan.of_type("aws:efs/fileSystem:FileSystem")
    assert fs.inputs["encrypted"] is True and fs.inputs.get("kmsKeyId"), where(fs)
    targets = stack_plan.of_type("aws:efs/mountTarget:MountTarget")
    assert len(targets) >= 2, "one mount target per private subnet (availability zone)"
    (sg,) = [
        g
        for g in stack_plan.of_type("aws:ec2/securityGroup:SecurityGroup")
        if "NFS" in g.inputs["description"]
    ]
    (rule,) = sg.inputs["ingress"]
    assert (rule["fromPort"], rule["toPort"]) == (2049, 2049), where(sg)
    assert not rule.get("cidrBlocks"), f"{where(sg)} admits addresses, not only the cluster's security group"
    addons = {a.inputs["addonName"] for a in stack_plan.of_type("aws:eks/addon:Addon")}
    assert "aws-efs-csi-driver" in addons
