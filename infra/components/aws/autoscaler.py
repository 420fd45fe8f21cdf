"""Cluster Autoscaler for the EKS managed node groups: pending pods (a blue/green preview colour waiting
for a GPU) add nodes up to each group's max; idle nodes go back down to its min.

It finds the groups by their auto-discovery tags (`discovery_tags`, set on every node group) and acts
through its own IRSA role, which may only resize and terminate in groups tagged as this cluster's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.components.helm import pinned_release

NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "cluster-autoscaler"
CHART = "cluster-autoscaler"
ENABLED_TAG = "k8s.io/cluster-autoscaler/enabled"

# Read-only discovery of groups, instance types and launch templates; no resource-level scoping exists
# for these Describe calls (AWS's documented minimum for the autoscaler).
DESCRIBE_ACTIONS = [
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "autoscaling:DescribeTags",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
    "eks:DescribeNodegroup",
]
# The only writes, and only on groups this cluster owns.
SCALE_ACTIONS = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]


def owner_tag(cluster_name: str) -> str:
    return f"k8s.io/cluster-autoscaler/{cluster_name}"


def discovery_tags(cluster_name: str) -> dict[str, str]:
    """Tags by which the autoscaler discovers a node group as one of this cluster's."""
    return {ENABLED_TAG: "true", owner_tag(cluster_name): "owned"}


def policy_document(cluster_name: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": DESCRIBE_ACTIONS, "Resource": "*"},
                {
                    "Effect": "Allow",
                    "Action": SCALE_ACTIONS,
                    "Resource": "*",
                    "Condition": {"StringEquals": {f"aws:ResourceTag/{owner_tag(cluster_name)}": "owned"}},
                },
            ],
        }
    )


@dataclass(frozen=True)
class ClusterAutoscalerArgs:
    cluster_name: pulumi.Output[str]
    region: str
    # An IAM role only the autoscaler's service account may assume (NetworkCluster.irsa_role).
    role: aws.iam.Role
    # Where it runs: the system pool, never a GPU node it might scale away.
    node_selector: dict[str, str]
    kube_provider: k8s.Provider


class ClusterAutoscaler(pulumi.ComponentResource):
    def __init__(self, name: str, args: ClusterAutoscalerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:aws:ClusterAutoscaler", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        aws.iam.RolePolicy(
            f"{name}-scale",
            role=args.role.id,
            policy=args.cluster_name.apply(policy_document),
            opts=child,
        )
        values: dict[str, Any] = {
            "cloudProvider": "aws",
            "awsRegion": args.region,
            "autoDiscovery": {"clusterName": args.cluster_name},
            "rbac": {
                "serviceAccount": {
                    "create": True,
                    "name": SERVICE_ACCOUNT,
                    "annotations": {"eks.amazonaws.com/role-arn": args.role.arn},
                }
            },
            "nodeSelector": args.node_selector,
            "extraArgs": {
                "balance-similar-node-groups": True,
                "expander": "least-waste",
                # Scale-down waits as long as a blue/green switch keeps the old colour (scaleDownDelaySeconds).
                "scale-down-unneeded-time": "10m",
            },
        }
        self.release = pinned_release(
            name, CHART, NAMESPACE, values, pulumi.ResourceOptions(parent=self, provider=args.kube_provider)
        )
        self.register_outputs({"release": self.release.name})
