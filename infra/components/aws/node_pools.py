"""EKS managed node groups: a CPU system pool and the GPU pool the model runs on."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import contracts
from infra.components.aws.autoscaler import discovery_tags
from infra.components.aws.iam import service_role
from infra.config import GpuPool, Pool

NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
)
SYSTEM_LABEL = {"spira.dev/pool": "system"}
SYSTEM_AMI = "AL2023_x86_64_STANDARD"
# EKS-optimised AL2023 with the NVIDIA driver and container toolkit; the device plugin does the rest.
GPU_AMI = "AL2023_x86_64_NVIDIA"


@dataclass(frozen=True)
class NodePoolsArgs:
    cluster_name: pulumi.Input[str]
    kubernetes_version: str
    subnet_ids: list[pulumi.Input[str]]
    system: Pool
    gpu: GpuPool
    tags: dict[str, str]


class NodePools(pulumi.ComponentResource):
    def __init__(self, name: str, args: NodePoolsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:aws:NodePools", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        contract = contracts.gpu_pool()
        role = service_role(f"{name}-node", "ec2.amazonaws.com", NODE_POLICIES, args.tags, child)
        cluster_name = pulumi.Output.from_input(args.cluster_name)
        # Every group carries the cluster autoscaler's discovery tags: it sizes each within min..max.
        system_tags = cluster_name.apply(lambda n: {**args.tags, **discovery_tags(n)})

        self.system = aws.eks.NodeGroup(
            f"{name}-system",
            cluster_name=args.cluster_name,
            version=args.kubernetes_version,
            node_role_arn=role.arn,
            subnet_ids=args.subnet_ids,
            ami_type=SYSTEM_AMI,
            instance_types=list(args.system.instance_types),
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=args.system.min_nodes,
                desired_size=args.system.min_nodes,
                max_size=args.system.max_nodes,
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            labels=SYSTEM_LABEL,
            tags=system_tags,
            # The autoscaler owns the desired size once the group exists.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["scalingConfig.desiredSize"]),
        )

        per_node = contracts.gpus_per_node(args.gpu.instance_types)
        # both colours of the model at full replicas (a blue/green switch) and the queue workers at their
        # most (KEDA's maxReplicaCount plus the canary's surge): every one of them asks for GPUs
        self.gpu_max_nodes = contracts.blue_green_max_nodes(
            args.gpu.model_replicas, args.gpu.gpus_per_pod, per_node, args.gpu.worker_max_pods
        )
        if args.gpu.min_nodes > self.gpu_max_nodes:
            raise contracts.ContractError(
                f"gpuMinNodes={args.gpu.min_nodes} exceeds the GPU pool's maximum {self.gpu_max_nodes}"
            )
        self.gpu = aws.eks.NodeGroup(
            f"{name}-gpu",
            cluster_name=args.cluster_name,
            version=args.kubernetes_version,
            node_role_arn=role.arn,
            subnet_ids=args.subnet_ids,
            ami_type=GPU_AMI,
            instance_types=list(args.gpu.instance_types),
            disk_size=args.gpu.disk_gb,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=args.gpu.min_nodes, desired_size=args.gpu.min_nodes, max_size=self.gpu_max_nodes
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            # Only pods that tolerate the taint (the model) land on GPU nodes; they select them by label.
            taints=[aws.eks.NodeGroupTaintArgs(**contract.eks_taint)],
            labels=contract.node_selector,
            tags=cluster_name.apply(
                lambda n: {
                    **args.tags,
                    **discovery_tags(n),
                    # Lets the cluster autoscaler scale the group up from zero for pods selecting the label.
                    f"k8s.io/cluster-autoscaler/node-template/label/{contract.label_key}": contract.label_value,
                    f"k8s.io/cluster-autoscaler/node-template/taint/{contract.taint.key}": (
                        f"{contract.taint.value}:{contract.taint.effect}"
                    ),
                }
            ),
            # The autoscaler owns the desired size once the group exists.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["scalingConfig.desiredSize"]),
        )
        self.register_outputs({"gpuMaxNodes": self.gpu_max_nodes, "gpuNodeGroup": self.gpu.node_group_name})
