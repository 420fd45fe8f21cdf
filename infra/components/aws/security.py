"""Security groups the AWS components share."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def cluster_only(
    name: str,
    vpc_id: pulumi.Input[str],
    port: int,
    what: str,
    client_security_group_id: pulumi.Input[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.ec2.SecurityGroup:
    """A security group admitting TCP `port` from the cluster's nodes (their security group) only."""
    return aws.ec2.SecurityGroup(
        f"{name}-sg",
        vpc_id=vpc_id,
        description=f"{what} from the cluster only",
        ingress=[
            aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp", from_port=port, to_port=port, security_groups=[client_security_group_id]
            )
        ],
        tags=tags,
        opts=opts,
    )
