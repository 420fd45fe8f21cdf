"""The policy HCL the Pulumi program hands pulumi-vault and the HCL the local bootstrap applied to
OpenBao are the same bytes: one template per kind, rendered by infra.vault.layout (and, for the clients of
/predict, infra.vault.clients) for each environment."""

from __future__ import annotations

import re

import pytest

from infra.offline import STACKS
from infra.vault import clients, layout
from spira.stack import StackInfo
from tests.fakes.infra import plan

pytestmark = pytest.mark.integration


def declared_policies(env: str) -> dict[str, str]:
    return {**layout.policies(env), **clients.policies(env)}


def applied_policies(info: StackInfo) -> dict[str, str]:
    root = info.vault_client()
    return {
        name: root.sys.read_policy(name=name)["data"]["rules"] for name in declared_policies(info.env_name)
    }


def test_openbao_holds_exactly_the_layouts_policies_for_local(local_stack: StackInfo) -> None:
    applied = applied_policies(local_stack)
    for name, hcl in declared_policies("local").items():
        assert applied[name].encode() == hcl.encode(), f"{name} differs from the layout's bytes"


@pytest.mark.parametrize("stack", STACKS)
def test_pulumi_is_given_the_bytes_the_local_bootstrap_applied_but_for_the_environment_name(
    local_stack: StackInfo, stack: str
) -> None:
    given = {r.inputs["name"]: r.inputs["policy"] for r in plan(stack).of_type("vault:index/policy:Policy")}
    # `pulumi up`'s own policy exists only in clusters (the local stack is configured as root)
    assert given.keys() - declared_policies(stack).keys() == layout.cluster_policies(stack).keys()
    given = {name: hcl for name, hcl in given.items() if name in declared_policies(stack)}
    assert given == declared_policies(stack)
    applied = applied_policies(local_stack)

    def as_local(text: str) -> str:
        # The environment's name is the only thing the templates substitute per environment.
        return re.sub(rf"\b{stack}\b", "local", text)

    assert {as_local(n) for n in given} == set(applied)
    for name, hcl in given.items():
        assert as_local(hcl).encode() == applied[as_local(name)].encode(), (
            f"{name} is not the bootstrap's HCL"
        )
