from __future__ import annotations

from pathlib import Path

import pytest

from spira.manifests import check, render
from tests.unit.manifests.helpers import docs, gate_job, model, one


@pytest.mark.parametrize("env", list(render.ENVIRONMENTS))
def test_each_environment_renders_to_its_committed_golden_file(env):
    assert render.golden_path(env).read_text() == render.golden_text(env)


def test_golden_findings_name_a_golden_file_that_no_longer_matches_the_render():
    findings = check.golden_findings({"staging": render.render("staging") + "# drifted\n"})
    assert [f.where for f in findings] == ["argocd/golden/staging.yaml"]


def test_an_unknown_environment_is_refused():
    with pytest.raises(ValueError, match="unknown environment"):
        render.render("qa")


def test_a_broken_kustomization_is_a_render_error(tmp_path: Path):
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    with pytest.raises(render.RenderError, match=r"missing\.yaml"):
        render.render_dir(tmp_path)


@pytest.mark.parametrize("env", list(render.ENVIRONMENTS))
def test_the_kustomization_digests_reach_the_rollout_and_the_gate_job(env):
    rendered = docs(env)
    assert model(rendered)["image"].startswith("registry.spira.example.org/spira/model@sha256:")
    (gate,) = gate_job(rendered)["spec"]["template"]["spec"]["containers"]
    assert gate["image"].startswith("registry.spira.example.org/spira/loadtest@sha256:")


def test_labels_reach_the_pod_templates_inside_the_rollout_and_the_gate_job():
    rendered = docs("production")
    rollout_labels = one(rendered, "Rollout", "spira-model")["spec"]["template"]["metadata"]["labels"]
    job_labels = gate_job(rendered)["spec"]["template"]["metadata"]["labels"]
    assert rollout_labels["app.kubernetes.io/part-of"] == "spira"
    assert job_labels["app.kubernetes.io/part-of"] == "spira"


def test_the_label_transform_adds_no_job_provider_to_the_prometheus_metric():
    metric = one(docs("staging"), "AnalysisTemplate", "spira-error-rate")["spec"]["metrics"][0]
    assert list(metric["provider"]) == ["prometheus"]


def test_every_rendered_object_lives_in_the_spira_namespace():
    assert {d["metadata"]["namespace"] for d in docs("production")} == {"spira"}
