"""Everything AWS-specific, behind one component that returns a cloud-neutral `Platform`.

A GKE package would return the same `Platform` (GKE, Cloud KMS, Cloud SQL, Artifact Registry) and the
rest of the program would not change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.components.aws.autoscaler import NAMESPACE as AUTOSCALER_NAMESPACE
from infra.components.aws.autoscaler import SERVICE_ACCOUNT as AUTOSCALER_SERVICE_ACCOUNT
from infra.components.aws.autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from infra.components.aws.database import DB_NAME, DB_USER, Postgres, PostgresArgs
from infra.components.aws.network_cluster import NetworkCluster, NetworkClusterArgs
from infra.components.aws.node_pools import SYSTEM_LABEL, NodePools, NodePoolsArgs
from infra.components.aws.registry import Registry, RegistryArgs
from infra.components.aws.spool import (
    EFS_CSI_NAMESPACE,
    EFS_CSI_SERVICE_ACCOUNT,
    SpoolStorage,
    SpoolStorageArgs,
)
from infra.components.platform import Database, Platform, VaultUnseal
from infra.config import StackConfig

ENCRYPTED_STORAGE_CLASS = "gp3-encrypted"
EBS_CSI_NAMESPACE = "kube-system"
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"


@dataclass(frozen=True)
class AwsPlatformArgs:
    config: StackConfig
    # Vault's service account: the only identity allowed to use the unseal key.
    vault_namespace: str
    vault_service_account: str


class AwsPlatform(pulumi.ComponentResource):
    def __init__(self, name: str, args: AwsPlatformArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:aws:Platform", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        tags = {"project": "spira-platform", "environment": cfg.environment, "managed-by": "pulumi"}

        self.network = NetworkCluster(
            f"{name}-cluster",
            NetworkClusterArgs(
                kubernetes_version=cfg.kubernetes_version,
                vpc_cidr=cfg.vpc_cidr,
                availability_zones=cfg.availability_zones,
                public_access_cidrs=cfg.public_access_cidrs,
                tags=tags,
            ),
            child,
        )
        cluster = self.network.cluster
        private_ids = [s.id for s in self.network.private_subnets]
        self.pools = NodePools(
            f"{name}-pools",
            NodePoolsArgs(
                cluster_name=cluster.name,
                kubernetes_version=cfg.kubernetes_version,
                subnet_ids=private_ids,
                system=cfg.system_pool,
                gpu=cfg.gpu_pool,
                tags=tags,
            ),
            child,
        )

        # Volumes (Vault raft, object store, ...) need the EBS CSI driver, with its own IAM role.
        ebs_role = self.network.irsa_role(f"{name}-ebs-csi", EBS_CSI_NAMESPACE, EBS_CSI_SERVICE_ACCOUNT, tags)
        aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi",
            role=ebs_role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
            opts=child,
        )
        after_nodes = pulumi.ResourceOptions(parent=self, depends_on=[self.pools.system])
        for addon in ("vpc-cni", "kube-proxy", "coredns"):
            aws.eks.Addon(f"{name}-{addon}", cluster_name=cluster.name, addon_name=addon, opts=after_nodes)
        ebs_addon = aws.eks.Addon(
            f"{name}-aws-ebs-csi-driver",
            cluster_name=cluster.name,
            addon_name="aws-ebs-csi-driver",
            service_account_role_arn=ebs_role.arn,
            opts=after_nodes,
        )
        k8s_opts = pulumi.ResourceOptions(
            parent=self, provider=self.network.kube_provider, depends_on=[ebs_addon]
        )
        k8s.storage.v1.StorageClass(
            f"{name}-{ENCRYPTED_STORAGE_CLASS}",
            metadata={
                "name": ENCRYPTED_STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            provisioner="ebs.csi.aws.com",
            # Encryption at rest for every persistent volume, whichever chart asks for one.
            parameters={"type": "gp3", "encrypted": "true"},
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            reclaim_policy="Retain",
            opts=k8s_opts,
        )

        # The model's archive spool: a ReadWriteMany volume every model pod mounts (EFS, its CSI driver).
        efs_role = self.network.irsa_role(f"{name}-efs-csi", EFS_CSI_NAMESPACE, EFS_CSI_SERVICE_ACCOUNT, tags)
        aws.iam.RolePolicyAttachment(
            f"{name}-efs-csi",
            role=efs_role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonEFSCSIDriverPolicy",
            opts=child,
        )
        self.spool = SpoolStorage(
            f"{name}-archive-spool",
            SpoolStorageArgs(
                vpc_id=self.network.vpc.id,
                subnet_ids=private_ids,
                client_security_group_id=cluster.vpc_config.cluster_security_group_id,
                cluster_name=cluster.name,
                csi_role_arn=efs_role.arn,
                kube_provider=self.network.kube_provider,
                depends_on=[self.pools.system],
                tags=tags,
            ),
            child,
        )

        # Node autoscaling within each pool's min..max, with its own role (scale only this cluster's groups).
        autoscaler_role = self.network.irsa_role(
            f"{name}-cluster-autoscaler", AUTOSCALER_NAMESPACE, AUTOSCALER_SERVICE_ACCOUNT, tags
        )
        self.autoscaler = ClusterAutoscaler(
            "cluster-autoscaler",
            ClusterAutoscalerArgs(
                cluster_name=cluster.name,
                region=cfg.region,
                role=autoscaler_role,
                node_selector=SYSTEM_LABEL,
                kube_provider=self.network.kube_provider,
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[self.pools.system]),
        )

        # Vault auto-unseal: a KMS key only Vault's service account can use.
        self.unseal_key = aws.kms.Key(
            f"{name}-vault-unseal",
            description=f"{name}: Vault auto-unseal",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            opts=child,
        )
        vault_role = self.network.irsa_role(
            f"{name}-vault-unseal", args.vault_namespace, args.vault_service_account, tags
        )
        aws.iam.RolePolicy(
            f"{name}-vault-unseal",
            role=vault_role.id,
            policy=self.unseal_key.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"],
                                "Resource": arn,
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        seal = self.unseal_key.key_id.apply(
            lambda key_id: f'seal "awskms" {{\n  region     = "{cfg.region}"\n  kms_key_id = "{key_id}"\n}}\n'
        )

        self.database = Postgres(
            f"{name}-mlflow-db",
            PostgresArgs(
                vpc_id=self.network.vpc.id,
                subnet_ids=private_ids,
                client_security_group_id=cluster.vpc_config.cluster_security_group_id,
                settings=cfg.mlflow,
                tags=tags,
            ),
            child,
        )
        self.registry = Registry(f"{name}-registry", RegistryArgs(cfg.registry_repositories, tags), child)

        self.platform = Platform(
            kube_provider=self.network.kube_provider,
            oidc_issuer=self.network.oidc_issuer,
            storage_class=ENCRYPTED_STORAGE_CLASS,
            unseal=VaultUnseal(
                seal_stanza=seal,
                service_account_annotations=vault_role.arn.apply(
                    lambda arn: {"eks.amazonaws.com/role-arn": arn}
                ),
            ),
            database=Database(
                host=self.database.instance.address,
                port=self.database.instance.port,
                name=DB_NAME,
                username=DB_USER,
                password=self.database.password.result,
            ),
            registry_urls=self.registry.urls,
            cluster_name=cluster.name,
            gpu_pool=self.pools.gpu,
        )
        self.register_outputs(
            {
                "clusterName": cluster.name,
                "oidcIssuer": self.network.oidc_issuer,
                "gpuMaxNodes": self.pools.gpu_max_nodes,
                "registryUrls": self.registry.urls,
            }
        )
