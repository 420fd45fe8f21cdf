"""Continuous training's engine as the Pulumi program plans it: Argo Workflows and Argo Events from their
pinned charts, the controller watching only the workload namespace with the object store as its artifact
repository, no Argo server exposed, and identities that can do only what the rendered objects need."""

from __future__ import annotations

import pytest

from infra import contracts
from infra.components.workflows import (
    ARTIFACTS_SECRET,
    SENSOR_RULES,
    SENSOR_SERVICE_ACCOUNT,
    STEP_RULES,
)
from infra.environments import declared
from infra.offline import STACKS, Plan, Recorded, stack_config
from infra.workflows import training_workflow
from spira.workflow import events
from tests.fakes.infra import plan, where

RELEASE = "kubernetes:helm.sh/v3:Release"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
ACCOUNT = "kubernetes:core/v1:ServiceAccount"


def _release(plan: Plan, chart: str) -> Recorded:
    (release,) = [r for r in plan.of_type(RELEASE) if r.inputs["chart"] == chart]
    return release


def test_argo_workflows_and_argo_events_come_from_their_pinned_charts(stack_plan: Plan) -> None:
    for chart in ("argo-workflows", "argo-events"):
        release, pin = _release(stack_plan, chart), contracts.chart(chart)
        assert release.inputs["version"] == pin.version, where(release)
        assert release.inputs["repositoryOpts"]["repo"] == pin.repo, where(release)


def test_the_controller_watches_only_the_workload_namespace_and_exposes_no_server(stack_plan: Plan) -> None:
    release = _release(stack_plan, "argo-workflows")
    values = release.inputs["values"]
    assert values["controller"]["workflowNamespaces"] == [declared().workload_namespace], where(release)
    assert values["server"]["enabled"] is False, where(release)
    assert values["workflow"] == {"serviceAccount": {"create": False}, "rbac": {"create": False}}
    events_values = _release(stack_plan, "argo-events").inputs["values"]["controller"]["rbac"]
    assert events_values == {"namespaced": True, "managedNamespace": declared().workload_namespace}


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
