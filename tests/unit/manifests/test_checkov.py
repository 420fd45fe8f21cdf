"""checkov itself (from .venv-checkov, installed by mk/manifests.mk) over the rendered output."""

from __future__ import annotations

import pytest

from spira.manifests.checkov_scan import CheckovCli, as_core_workloads, parse_report
from tests.unit.manifests.helpers import docs, model


def test_the_rollout_and_the_gate_job_are_handed_over_as_the_core_workloads_they_become():
    extra = as_core_workloads(docs("staging"))[len(docs("staging")) :]
    assert [(d["kind"], d["metadata"]["name"]) for d in extra] == [
        ("Job", "spira-clinical-gate-clinical"),
        ("Job", "spira-gate-load-test"),
        ("Job", "spira-worker-gate-preview-consumer"),
        ("Deployment", "spira-model"),
        ("Deployment", "spira-worker"),
    ]
    assert extra[3]["metadata"]["annotations"]["spira.dev/model-version"]
    # the workers' inline skips (a queue consumer has no port to probe) carry over to their twin
    assert "checkov.io/skip1" in extra[4]["metadata"]["annotations"]


@pytest.mark.parametrize("env", ["local", "staging", "production"])
def test_checkov_finds_no_failed_check(env):
    assert [str(f) for f in CheckovCli().scan(as_core_workloads(docs(env)))] == []


def test_checkov_sees_inside_the_rollout_through_its_deployment_twin():
    rendered = docs("staging")
    model(rendered)["securityContext"]["readOnlyRootFilesystem"] = False
    failed = {(f.check_id, f.resource) for f in CheckovCli().scan(as_core_workloads(rendered))}
    assert ("CKV_K8S_22", "Deployment.spira.spira-model") in failed


def test_a_checkov_run_without_a_report_is_an_error_not_a_pass():
    with pytest.raises(RuntimeError, match="printed no report"):
        parse_report("", 2, "boom")
