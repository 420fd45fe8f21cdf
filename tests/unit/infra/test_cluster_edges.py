"""Policies over the offline plans for the cluster's edges: the EKS API is private unless a stack lists
who may reach it, and never open to the internet; Vault's audit never hinges on one file. Failures name
the resource's URN."""

from __future__ import annotations

import re

import pytest

from infra.components.vault import AUDIT_DEVICES
from infra.offline import STACKS, Plan
from infra.policy import rules
from infra.vault import layout
from tests.fakes.infra import plan, where

EKS = "aws:eks/cluster:Cluster"
OPERATORS = ["203.0.113.0/24"]


def _eks(p: Plan):
    (cluster,) = p.of_type(EKS)
    return cluster


def _violations(p: Plan) -> list[str]:
    return [
        f"{where(r)} {rule}: {msg}"
        for r in p.resources
        if r.custom
        for rule, msg in rules.check(r.type, r.inputs, p.stack)
    ]


def test_the_eks_api_answers_only_inside_the_vpc_unless_the_stack_lists_cidrs(stack_plan: Plan) -> None:
    cluster = _eks(stack_plan)
    vpc = cluster.inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True, f"{where(cluster)} has no private endpoint"
    assert vpc["endpointPublicAccess"] is False, f"{where(cluster)} is public by default"
    assert not vpc.get("publicAccessCidrs"), f"{where(cluster)} lists public CIDRs nobody configured"


@pytest.mark.parametrize("stack", STACKS)
def test_a_stack_that_lists_cidrs_gets_a_public_endpoint_for_exactly_those(stack: str) -> None:
    p = plan(stack, publicAccessCidrs=OPERATORS)
    cluster = _eks(p)
    vpc = cluster.inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True, where(cluster)
    assert vpc["publicAccessCidrs"] == OPERATORS, where(cluster)
    assert _violations(p) == []


@pytest.mark.parametrize("stack", STACKS)
def test_crossguard_refuses_a_stack_that_opens_the_eks_api_to_the_internet(stack: str) -> None:
    p = plan(stack, publicAccessCidrs=["0.0.0.0/0"])
    found = _violations(p)
    assert len(found) == 1 and "0.0.0.0/0" in found[0], found
    assert found[0].startswith(f"{where(_eks(p))} eks-api-not-open-to-the-internet: "), found


def test_vault_audits_to_a_file_and_to_stdout_so_one_full_device_never_blocks_it(stack_plan: Plan) -> None:
    devices = {a.inputs["path"]: a for a in stack_plan.of_type("vault:index/audit:Audit")}
    assert set(devices) == {"file", "stdout"}, f"audit devices: {sorted(devices)}"
    assert devices["stdout"].inputs["options"] == {"file_path": "stdout"}, where(devices["stdout"])
    file_path = devices["file"].inputs["options"]["file_path"]
    assert file_path == AUDIT_DEVICES["file"] and file_path.endswith("/" + layout.AUDIT_LOG_FILE), where(
        devices["file"]
    )


def test_pulumis_own_vault_policy_may_manage_every_audit_device_it_creates(stack_plan: Plan) -> None:
    name = layout.pulumi_policy_name(stack_plan.stack)
    policy = next(r for r in stack_plan.of_type("vault:index/policy:Policy") if r.inputs["name"] == name)
    paths = set(re.findall(r'path "([^"]+)"', policy.inputs["policy"]))
    for device in AUDIT_DEVICES:
        assert f"sys/audit/{device}" in paths, f"{where(policy)} cannot manage the audit device {device}"
