"""IAM documents and roles shared by the AWS components (plain JSON, no provider invokes)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pulumi
import pulumi_aws as aws


def assume_role_policy(
    principal: dict[str, Any], action: str, condition: dict[str, Any] | None = None
) -> str:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": principal, "Action": action}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def service_role(
    name: str,
    service: str,
    managed_policies: Iterable[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.iam.Role:
    """A role an AWS service assumes, with AWS-managed policies attached."""
    role = aws.iam.Role(
        name,
        assume_role_policy=assume_role_policy({"Service": service}, "sts:AssumeRole"),
        tags=tags,
        opts=opts,
    )
    for arn in managed_policies:
        short = arn.rsplit("/", 1)[-1]
        aws.iam.RolePolicyAttachment(
            f"{name}-{short}", role=role.name, policy_arn=arn, opts=pulumi.ResourceOptions.merge(opts, None)
        )
    return role
