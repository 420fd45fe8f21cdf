"""Continuous training's engine as the Pulumi program plans it: Argo Workflows and Argo Events from their
pinned charts, the controller watching only the workload namespace with the object store as its artifact
repository, no Argo server exposed, and identities that can do only what the rendered objects need."""

from __future__ import annotations

import json
import re

import pytest

from infra import contracts
from infra.components.object_store import ROOT_SECRET, STATIC_USERS_SECRET
from infra.components.workflows import (
    ARTIFACTS_SECRET,
    CONTROLLER_RULES,
    CONTROLLER_SERVICE_ACCOUNT,
    SENSOR_RULES,
    SENSOR_SERVICE_ACCOUNT,
    STEP_RULES,
    WORKFLOWS_NAMESPACE,
)
from infra.environments import DeclarationError, Grant, declared, parse
from infra.offline import STACKS, Plan, Recorded, stack_config
from infra.vault import layout
from infra.workflows import (
    ARTIFACT_ACTIONS,
    ARTIFACT_READER,
    artifact_grants,
    artifact_user,
    training_workflow,
)
from spira.workflow import events
from tests.fakes.infra import plan, where

RELEASE = "kubernetes:helm.sh/v3:Release"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
ACCOUNT = "kubernetes:core/v1:ServiceAccount"
SECRET = "kubernetes:core/v1:Secret"
PASSWORD = "random:index/randomPassword:RandomPassword"


def _release(plan: Plan, chart: str) -> Recorded:
    (release,) = [r for r in plan.of_type(RELEASE) if r.inputs["chart"] == chart]
    return release


def test_argo_workflows_and_argo_events_come_from_their_pinned_charts(stack_plan: Plan) -> None:
    for chart in ("argo-workflows", "argo-events"):
        release, pin = _release(stack_plan, chart), contracts.chart(chart)
        assert release.inputs["version"] == pin.version, where(release)
        assert release.inputs["repositoryOpts"]["repo"] == pin.repo, where(release)


def test_the_controller_manages_only_the_workload_namespace_with_roles_and_exposes_no_server(
    stack_plan: Plan,
) -> None:
    release = _release(stack_plan, "argo-workflows")
    values = release.inputs["values"]
    namespace = declared().workload_namespace
    # `--namespaced` (Roles, not ClusterRoles) and the namespace it manages is the workload namespace
    assert values["singleNamespace"] is True, where(release)
    assert values["controller"]["extraArgs"] == ["--managed-namespace", namespace], where(release)
    # nothing cluster-wide from the chart: no ClusterWorkflowTemplate access, no aggregated user roles
    assert values["controller"]["clusterWorkflowTemplates"] == {"enabled": False}, where(release)
    assert values["createAggregateRoles"] is False, where(release)
    assert values["server"]["enabled"] is False, where(release)
    assert values["workflow"] == {"serviceAccount": {"create": False}, "rbac": {"create": False}}
    events_values = _release(stack_plan, "argo-events").inputs["values"]["controller"]["rbac"]
    assert events_values == {"namespaced": True, "managedNamespace": namespace}
    # its rights in the workload namespace: our Role, bound to the chart's controller account in `argo`
    account = values["controller"]["serviceAccount"]
    assert account == {"create": True, "name": CONTROLLER_SERVICE_ACCOUNT}, where(release)
    role = stack_plan.one(ROLE, "workflows-controller-role")
    binding = stack_plan.one(BINDING, "workflows-controller-binding")
    assert role.inputs["metadata"]["namespace"] == binding.inputs["metadata"]["namespace"] == namespace
    assert role.inputs["rules"] == CONTROLLER_RULES, where(role)
    assert binding.inputs["roleRef"]["name"] == role.inputs["metadata"]["name"], where(binding)
    assert binding.inputs["subjects"] == [
        {"kind": "ServiceAccount", "name": CONTROLLER_SERVICE_ACCOUNT, "namespace": WORKFLOWS_NAMESPACE}
    ], where(binding)
    # the controller reads no Secret and touches nothing outside what a workflow's pods need
    granted = {(r, v) for rule in CONTROLLER_RULES for r in rule["resources"] for v in rule["verbs"]}
    assert not {r for r, _ in granted} & {"secrets", "namespaces", "roles", "rolebindings", "nodes"}
    clusterwide = [r for r in stack_plan.resources if r.type.endswith(("ClusterRole", "ClusterRoleBinding"))]
    assert not [r for r in clusterwide if "workflows" in r.urn], [where(r) for r in clusterwide]


@pytest.mark.parametrize("env", STACKS)
def test_the_artifact_repository_is_the_environments_features_bucket_in_the_object_store(env: str) -> None:
    engine = stack_config(env)["spira-platform:objectStore"]
    s3 = _release(plan(env), "argo-workflows").inputs["values"]["artifactRepository"]["s3"]
    store = declared().service("objectstore", engine)
    assert s3["bucket"] == declared().buckets(env)["features_bucket"] == f"spira-{env}-features"
    assert s3["endpoint"] == f"{store.host}:{store.port}"
    assert s3["accessKeySecret"]["name"] == s3["secretKeySecret"]["name"] == ARTIFACTS_SECRET
    assert s3["insecure"] is (store.scheme == "http")
    assert ("caSecret" in s3) is (store.scheme == "https")  # TLS from the private CA: trusted explicitly


def test_the_step_and_sensor_accounts_get_only_what_the_rendered_objects_need(stack_plan: Plan) -> None:
    namespace = declared().workload_namespace
    expected = {training_workflow().service_account: STEP_RULES, SENSOR_SERVICE_ACCOUNT: SENSOR_RULES}
    assert events.SENSOR_SERVICE_ACCOUNT == SENSOR_SERVICE_ACCOUNT
    accounts = {r.inputs["metadata"]["name"]: r for r in stack_plan.of_type(ACCOUNT)}
    roles = {r.inputs["metadata"]["name"]: r for r in stack_plan.of_type(ROLE)}
    bindings = {r.inputs["metadata"]["name"]: r for r in stack_plan.of_type(BINDING)}
    for account, rules in expected.items():
        assert accounts[account].inputs["metadata"]["namespace"] == namespace
        assert roles[account].inputs["rules"] == rules, where(roles[account])
        binding = bindings[account].inputs
        assert binding["roleRef"]["name"] == account
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    verbs = {v for rules in expected.values() for rule in rules for v in rule["verbs"]}
    assert verbs <= {"create", "patch", "get"}  # never list, watch, delete or anything on pods or secrets


def _generated(plan: Plan, role: str = ARTIFACT_READER) -> tuple[str, str]:
    """The static user's key as the program generated it (the mocks' RandomPassword results)."""
    return tuple(
        plan.one(PASSWORD, f"objectstore-{role}-{half}-key").state["result"] for half in ("access", "secret")
    )


def test_the_artifact_key_may_only_read_the_labelled_data_which_the_training_grant_covers() -> None:
    prefix = training_workflow().data_prefix
    for env in STACKS:
        assert artifact_grants(env) == (Grant(f"spira-{env}-features", prefix, ARTIFACT_ACTIONS),)
        assert set(ARTIFACT_ACTIONS) == {"GetObject", "ListBucket"}  # never Put or Delete
    # narrowed from the training workload's grant: a declaration whose training grant no longer covers the
    # labelled data is refused rather than handing the executor more than the steps hold
    import yaml

    from infra.environments import DECLARATION

    raw = yaml.safe_load(DECLARATION.read_text())
    raw["object_store_access"]["training"] = [
        {"bucket": "features_bucket", "prefix": "train/", "actions": ["GetObject"]}
    ]
    narrowed = parse(raw)
    import infra.workflows as wf

    original = wf.declared
    wf.declared = lambda: narrowed
    try:
        with pytest.raises(DeclarationError, match=r"object_store_access\.training"):
            artifact_grants("staging")
    finally:
        wf.declared = original


@pytest.mark.parametrize("engine", ["seaweedfs", "minio"])
def test_the_artifact_secret_holds_the_object_stores_reader_key_and_the_platform_ca(engine: str) -> None:
    p = plan("staging", objectStore=engine)
    access, secret_key = _generated(p)
    secret = p.one(SECRET, f"workflows-{ARTIFACTS_SECRET}")
    assert secret.inputs["metadata"]["namespace"] == declared().workload_namespace, where(secret)
    data = secret.inputs["stringData"]
    assert data["accesskey"] == access and data["secretkey"] == secret_key, where(secret)
    assert any(path.startswith("stringData") for path in secret.secret_paths), (
        f"{where(secret)} is not secret"
    )
    # the object store serves https from the platform CA: the executor trusts exactly that CA
    assert declared().service("objectstore", engine).scheme == "https"
    assert data[declared().vault_ca.key].startswith("-----BEGIN CERTIFICATE-----"), where(secret)
    s3 = _release(p, "argo-workflows").inputs["values"]["artifactRepository"]["s3"]
    assert {s3["accessKeySecret"]["key"], s3["secretKeySecret"]["key"], s3["caSecret"]["key"]} <= set(data)


def test_seaweedfs_knows_the_reader_as_a_static_identity_limited_to_the_labelled_prefix() -> None:
    p = plan("staging", objectStore="seaweedfs")
    access, secret_key = _generated(p)
    root = p.one(SECRET, "objectstore-root")
    assert root.inputs["metadata"]["name"] == ROOT_SECRET
    identities = {
        i["name"]: i for i in json.loads(root.inputs["stringData"]["seaweedfs_s3_config"])["identities"]
    }
    reader = identities[artifact_user("staging")]
    assert reader["credentials"] == [{"accessKey": access, "secretKey": secret_key}], where(root)
    labelled = f"spira-staging-features/{training_workflow().data_prefix}*"
    assert reader["actions"] == [f"List:{labelled}", f"Read:{labelled}"], where(root)


def test_minio_creates_the_reader_with_its_policy_and_a_secret_key_from_a_secret() -> None:
    p = plan("staging", objectStore="minio")
    user = artifact_user("staging")
    access, secret_key = _generated(p)
    values = p.one(RELEASE, "objectstore").inputs["values"]
    assert values["users"] == [
        {
            "accessKey": access,
            "existingSecret": STATIC_USERS_SECRET,
            "existingSecretKey": ARTIFACT_READER,
            "policy": user,
        }
    ]
    prefix = training_workflow().data_prefix
    assert values["policies"] == [
        {
            "name": user,
            "statements": [
                {
                    "resources": [f"arn:aws:s3:::spira-staging-features/{prefix}*"],
                    "actions": ["s3:GetObject"],
                },
                {
                    "resources": ["arn:aws:s3:::spira-staging-features"],
                    "actions": ["s3:ListBucket"],
                    "conditions": [{"StringLike": f'"s3:prefix": ["{prefix}*"]'}],
                },
            ],
        }
    ]
    store_secret = p.one(SECRET, "objectstore-static-users")
    assert store_secret.inputs["stringData"] == {ARTIFACT_READER: secret_key}, where(store_secret)


def test_the_candidate_dispatch_credential_goes_from_the_stacks_secret_config_to_vault(
    stack_plan: Plan,
) -> None:
    from infra.offline import OFFLINE_SECRET

    written = stack_plan.one("vault:kv/secretV2:SecretV2", "workflows-vault-candidate-dispatch")
    assert written.inputs["name"] == layout.secret_path(stack_plan.stack, "candidate-dispatch"), where(
        written
    )
    data = json.loads(written.inputs["dataJson"])
    assert set(data) == set(layout.DISPATCH_KEYS) <= set(layout.SERVICES["training"].keys), where(written)
    repo = stack_config(stack_plan.stack)["spira-platform:repoUrl"]
    assert repo == f"https://github.com/{data['github_repository']}.git", where(written)
    # the token is the stack's secret config (never a value in git), and the write is marked secret
    assert data["github_dispatch_token"] == OFFLINE_SECRET.format(key="spira-platform:candidateDispatchToken")
    assert any(path.startswith("dataJson") for path in written.secret_paths), (
        f"{where(written)} is not secret"
    )


def test_pulumis_vault_policy_covers_every_secret_the_program_writes(stack_plan: Plan) -> None:
    name = layout.pulumi_policy_name(stack_plan.stack)
    policy = next(r for r in stack_plan.of_type("vault:index/policy:Policy") if r.inputs["name"] == name)
    paths = set(re.findall(r'path "([^"]+)"', policy.inputs["policy"]))
    for secret in stack_plan.of_type("vault:kv/secretV2:SecretV2"):
        assert f"{layout.KV_MOUNT}/data/{secret.inputs['name']}" in paths, (
            f"{where(policy)} cannot write {secret.inputs['name']} ({where(secret)})"
        )
