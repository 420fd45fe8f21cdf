"""The clients of /predict in both stacks' offline plans: Vault's identity provider issues their tokens as
infra/vault/clients.py declares (the local stack applies the same); failures name the resource's URN."""

from __future__ import annotations

import json

from infra.environments import declared
from infra.offline import Plan
from infra.vault import clients, layout
from tests.fakes.infra import where


def test_the_identity_provider_issues_as_vaults_in_cluster_address(stack_plan: Plan) -> None:
    (issuer,) = stack_plan.of_type("vault:identity/oidc:Oidc")
    assert issuer.inputs["issuer"] == declared().service("vault").url, where(issuer)


def test_each_client_kind_has_a_token_role_on_the_environments_rotating_key(stack_plan: Plan) -> None:
    env = stack_plan.stack
    (key,) = stack_plan.of_type("vault:identity/oidcKey:OidcKey")
    assert key.inputs["name"] == clients.key_name(env), where(key)
    assert key.inputs["allowedClientIds"] == [clients.PREDICT_AUDIENCE], where(key)
    assert key.inputs["rotationPeriod"] <= key.inputs["verificationTtl"], where(key)
    roles = {r.inputs["name"]: r for r in stack_plan.of_type("vault:identity/oidcRole:OidcRole")}
    assert set(roles) == {clients.role_name(env, kind) for kind in clients.CLIENTS}
    for kind in clients.CLIENTS:
        role = roles[clients.role_name(env, kind)]
        assert role.inputs["clientId"] == clients.PREDICT_AUDIENCE, where(role)
        assert json.loads(role.inputs["template"]) == {clients.CLIENT_CLAIM: kind}, where(role)
        assert role.inputs["ttl"] <= layout.TOKEN_TTL_S, where(role)


def test_a_client_may_read_its_own_token_and_nothing_else(stack_plan: Plan) -> None:
    env = stack_plan.stack
    policies = {r.inputs["name"]: r.inputs["policy"] for r in stack_plan.of_type("vault:index/policy:Policy")}
    for kind in clients.CLIENTS:
        hcl = policies[clients.role_name(env, kind)]
        assert hcl.count("path ") == 1 and f"identity/oidc/token/{clients.role_name(env, kind)}" in hcl


def test_hospitals_log_in_with_approle_and_in_cluster_clients_with_their_service_account(
    stack_plan: Plan,
) -> None:
    env = stack_plan.stack
    approle = {
        r.inputs["roleName"]: r for r in stack_plan.of_type("vault:appRole/authBackendRole:AuthBackendRole")
    }
    assert set(approle) == {clients.role_name(env, "hospital")}
    role = approle[clients.role_name(env, "hospital")]
    assert role.inputs["tokenPolicies"] == [clients.role_name(env, "hospital")], where(role)
    assert role.inputs["secretIdTtl"] == clients.HOSPITAL_SECRET_ID_TTL_S, where(role)
    jwt_roles = {
        r.inputs["roleName"]: r for r in stack_plan.of_type("vault:jwt/authBackendRole:AuthBackendRole")
    }
    for kind in ("gate", "intake"):
        role = jwt_roles[clients.role_name(env, kind)]
        assert role.inputs["boundSubject"] == clients.CLIENTS[kind].subject, where(role)


def test_the_operators_may_issue_and_revoke_hospitals_secret_ids_and_nothing_else_of_approle() -> None:
    hcl = layout.operator_policy("staging")
    approle_paths = [line for line in hcl.splitlines() if line.startswith('path "auth/approle')]
    assert approle_paths and all("spira-staging-predict-hospital" in p for p in approle_paths)
