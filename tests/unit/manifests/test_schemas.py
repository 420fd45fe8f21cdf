from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spira.manifests import bootstrap, contracts, render, schemas
from tests.unit.manifests.helpers import docs, gate_job, model, one

VERSION = contracts.kubernetes_version()


def messages(doc: dict) -> list[str]:
    return [f"{e.path}: {e.message}" for e in schemas.validate(doc, VERSION)]


@pytest.mark.parametrize("env", list(render.ENVIRONMENTS))
def test_every_rendered_object_passes_the_strict_schemas(env):
    assert [(d["kind"], messages(d)) for d in docs(env) if messages(d)] == []


def test_the_bootstrap_templates_and_each_root_application_pass_the_strict_schemas():
    project, template = contracts.bootstrap_templates()
    apps = [
        bootstrap.root_application(template, env, e["branch"], e["overlay"], contracts.repo_url())
        for env, e in contracts.environments().items()
    ]
    assert [messages(d) for d in [project, template, *apps]] == [[]] * (2 + len(apps))


def test_a_typo_in_a_rollout_field_is_rejected():
    rollout = one(docs(), "Rollout", "spira-model")
    rollout["spec"]["strategy"]["blueGreen"]["activeServce"] = "spira-model-active"
    assert messages(rollout) == [
        "spec.strategy.blueGreen: Additional properties are not allowed ('activeServce' was unexpected)"
    ]


def test_a_wrong_type_in_a_rollout_field_is_rejected():
    rollout = one(docs(), "Rollout", "spira-model")
    rollout["spec"]["replicas"] = "three"
    assert messages(rollout) == ["spec.replicas: 'three' is not of type 'integer'"]


def test_a_typo_in_the_rollout_pod_template_is_rejected_by_the_core_pod_schema():
    rendered = docs()
    model(rendered)["readinesProbe"] = {}
    (message,) = messages(one(rendered, "Rollout", "spira-model"))
    assert message.startswith("spec.template.spec.containers[0]: PodSpec:") and "readinesProbe" in message


def test_a_typo_in_the_rollout_metadata_is_rejected_by_the_core_object_meta_schema():
    rollout = one(docs(), "Rollout", "spira-model")
    rollout["metadata"]["annotation"] = {}
    (message,) = messages(rollout)
    assert message.startswith("metadata: ObjectMeta:") and "annotation" in message


def test_a_typo_in_the_gate_job_is_rejected():
    rendered = docs()
    gate_job(rendered)["spec"]["backofLimit"] = 0
    (message,) = messages(one(rendered, "AnalysisTemplate", "spira-gate"))
    assert "backofLimit" in message and message.startswith("spec.metrics[0].provider.job.spec:")


def test_a_typo_in_the_gate_container_is_rejected():
    rendered = docs()
    gate_job(rendered)["spec"]["template"]["spec"]["containers"][0]["comand"] = ["spira"]
    (message,) = messages(one(rendered, "AnalysisTemplate", "spira-gate"))
    assert "comand" in message


def test_a_typo_in_the_prometheus_provider_is_rejected():
    template = one(docs(), "AnalysisTemplate", "spira-error-rate")
    template["spec"]["metrics"][0]["provider"]["prometheus"]["adress"] = "http://p"
    assert "adress" in messages(template)[0]


def test_a_subtree_that_is_not_vendored_is_rejected_rather_than_accepted_blindly():
    rollout = one(docs(), "Rollout", "spira-model")
    rollout["spec"]["strategy"]["canary"] = {"trafficRouting": {"nginx": {"stableIngress": "x"}}}
    (message,) = messages(rollout)
    assert message.startswith("spec.strategy.canary.trafficRouting:") and "not vendored" in message


def test_a_typo_in_the_root_application_sync_policy_is_rejected():
    _, app = contracts.bootstrap_templates()
    app["spec"]["syncPolicy"]["automated"]["selfHeel"] = True
    assert messages(app) == [
        "spec.syncPolicy.automated: Additional properties are not allowed ('selfHeel' was unexpected)"
    ]


def test_a_typo_in_the_appproject_is_rejected():
    project, _ = contracts.bootstrap_templates()
    project["spec"]["sourceRepo"] = []
    assert "sourceRepo" in messages(project)[0]


def test_a_typo_in_a_core_service_is_rejected():
    service = one(docs(), "Service", "spira-model-preview")
    service["spec"]["selektor"] = {}
    assert "selektor" in messages(service)[0]


def test_an_argo_kind_without_a_vendored_schema_is_an_error_not_a_pass():
    assert messages(
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "x"}}
    ) == ["(document): no vendored CRD schema for argoproj.io/v1alpha1/Experiment"]


def _objects(node, path=""):
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield path, node
        for key, value in node.items():
            yield from _objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _objects(value, f"{path}/{i}")


@pytest.mark.parametrize("api_kind", sorted(schemas.CRD_FILES))
def test_every_closed_object_of_a_vendored_crd_rejects_unknown_fields(api_kind):
    open_objects = [
        path
        for path, node in _objects(schemas.crd_schema(*api_kind))
        if node.get("additionalProperties") is not False
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and not isinstance(node.get("additionalProperties"), dict)
    ]
    assert open_objects == []


@pytest.mark.parametrize("name", sorted(set(schemas.CRD_FILES.values())))
def test_each_vendored_crd_names_its_upstream_file_and_commit(name):
    text = (schemas.CRD_DIR / name).read_text()
    # Argo's CRDs live under manifests/crds/, KEDA's under config/crd/bases/, cert-manager's under deploy/crds/
    # (Argo Workflows' under manifests/base/crds/full/)
    upstream = ("manifests/crds/", "manifests/base/crds/", "config/crd/bases/", "deploy/crds/")
    assert any(folder in text for folder in upstream) and "commit " in text
    assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"


def test_the_kubernetes_version_comes_from_the_pulumi_project():
    declared = yaml.safe_load(Path(render.REPO_ROOT / "Pulumi.yaml").read_text())["config"][
        "kubernetesVersion"
    ]
    assert str(declared["default"]) == VERSION
