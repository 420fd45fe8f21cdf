"""The archive spool's storage class: EFS, so every pod of the model Rollout (both colours, on any node)
mounts one volume that outlives them (argocd/base/model-persistentvolumeclaim.yaml, serving/archive.py).

An encrypted file system (its own KMS key) with a mount target in each private subnet, reachable on NFS
from the cluster only; the EFS CSI driver (EKS add-on, its own IRSA role) provisions one access point per
claim, owned by the model's user, under /spira-spool."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.components.aws.security import cluster_only

SPOOL_STORAGE_CLASS = "efs-spool"
EFS_CSI_NAMESPACE = "kube-system"
EFS_CSI_SERVICE_ACCOUNT = "efs-csi-controller-sa"
# The model container's user and group (argocd/base/model-rollout.yaml securityContext).
SPOOL_UID = SPOOL_GID = "10001"


@dataclass(frozen=True)
class SpoolStorageArgs:
    vpc_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Input[str]]
    # Only the cluster's nodes and pods (the EKS cluster security group) may mount it.
    client_security_group_id: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    csi_role_arn: pulumi.Input[str]
    kube_provider: pulumi.ProviderResource
    depends_on: list[pulumi.Resource]
    tags: dict[str, str]


class SpoolStorage(pulumi.ComponentResource):
    def __init__(self, name: str, args: SpoolStorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:aws:SpoolStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = aws.kms.Key(
            f"{name}-key",
            description=f"{name}: archive spool encryption (patients' uploads not yet archived)",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=args.tags,
            opts=child,
        )
        self.filesystem = aws.efs.FileSystem(
            f"{name}-fs",
            encrypted=True,
            kms_key_id=key.arn,
            throughput_mode="elastic",
            tags={**args.tags, "Name": f"{name}-spool"},
            opts=child,
        )
        sg = cluster_only(
            name,
            args.vpc_id,
            2049,
            "NFS to the archive spool",
            args.client_security_group_id,
            args.tags,
            child,
        )
        targets = [
            aws.efs.MountTarget(
                f"{name}-mount-{i}",
                file_system_id=self.filesystem.id,
                subnet_id=subnet,
                security_groups=[sg.id],
                opts=child,
            )
            for i, subnet in enumerate(args.subnet_ids)
        ]
        addon = aws.eks.Addon(
            f"{name}-aws-efs-csi-driver",
            cluster_name=args.cluster_name,
            addon_name="aws-efs-csi-driver",
            service_account_role_arn=args.csi_role_arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        self.storage_class = k8s.storage.v1.StorageClass(
            f"{name}-{SPOOL_STORAGE_CLASS}",
            metadata={"name": SPOOL_STORAGE_CLASS},
            provisioner="efs.csi.aws.com",
            parameters={
                "provisioningMode": "efs-ap",
                "fileSystemId": self.filesystem.id,
                "directoryPerms": "700",
                "uid": SPOOL_UID,
                "gid": SPOOL_GID,
                "basePath": "/spira-spool",
            },
            mount_options=["tls"],  # in transit too
            # Never deleted with its claim: it may hold answered uploads not yet archived.
            reclaim_policy="Retain",
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.kube_provider, depends_on=[addon, *targets]
            ),
        )
        self.register_outputs({"fileSystemId": self.filesystem.id})
