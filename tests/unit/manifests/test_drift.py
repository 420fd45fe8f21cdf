from __future__ import annotations

import pytest

from spira.manifests import check, contracts, drift
from tests.unit.manifests.helpers import docs, model, one

ALLOW = contracts.allowlist()


def test_the_environments_differ_only_in_allowlisted_fields():
    rendered = {env: docs(env) for env in ("local", "staging", "production")}
    assert check.drift_findings(rendered) == []


def test_staging_and_production_do_differ_so_the_guard_is_not_vacuous():
    paths = {drift.format_path(d.path) for d in drift.differences(docs("staging"), docs("production"))}
    assert "spec.replicas" in paths
    assert "spec.template.spec.containers[name=model].env[name=VAULT_ROLE].value" in paths


def test_a_different_image_in_production_fails_the_drift_guard():
    production = docs("production")
    model(production)["image"] = model(production)["image"][:-1] + "0"
    (diff,) = drift.drift(docs("staging"), production, ALLOW)
    assert drift.format_path(diff.path) == "spec.template.spec.containers[name=model].image"


def test_a_changed_probe_in_one_overlay_fails_the_drift_guard():
    staging = docs("staging")
    model(staging)["readinessProbe"]["periodSeconds"] = 1
    assert [str(d) for d in drift.drift(staging, docs("production"), ALLOW)] == [
        "Rollout/spira-model spec.template.spec.containers[name=model].readinessProbe.periodSeconds: 1 != 5"
    ]


def test_an_object_only_one_environment_renders_fails_the_drift_guard():
    production = [
        d
        for d in docs("production")
        if (d["kind"], d["metadata"]["name"]) != ("PodDisruptionBudget", "spira-model")
    ]
    (diff,) = drift.drift(docs("staging"), production, ALLOW)
    assert diff.identity[1] == "PodDisruptionBudget" and diff.right == drift.MISSING


def test_list_items_are_compared_by_name_not_position():
    staging, production = docs("staging"), docs("staging")
    model(production)["volumeMounts"].reverse()
    one(production, "Rollout", "spira-model")["spec"]["template"]["spec"]["volumes"].reverse()
    assert drift.differences(staging, production) == []


def test_an_allowlist_entry_must_say_why():
    with pytest.raises(ValueError, match="has no `why`"):
        drift.parse_allowlist({"allowed": [{"kind": "Rollout", "name": "spira-model", "path": ["spec"]}]})


def test_the_allowlist_names_only_the_fields_the_issue_permits():
    steps = {a.path[-1] for a in ALLOW}
    # `schedules`: the training CronWorkflow's schedule per cluster (issue 20: declared per environment)
    assert steps <= {"replicas", "nvidia.com/gpu", "value", "schedules"}


def test_an_allowlist_step_by_position_reaches_an_item_of_a_list_whose_items_have_no_name():
    (entry,) = drift.parse_allowlist(
        {"allowed": [{"kind": "Sensor", "name": "s", "path": ["spec", "data", 0, "value"], "why": "bucket"}]}
    )
    left = [
        {
            "apiVersion": "v1",
            "kind": "Sensor",
            "metadata": {"name": "s"},
            "spec": {"data": [{"value": "a"}, {"value": "x"}]},
        }
    ]
    right = [
        {
            "apiVersion": "v1",
            "kind": "Sensor",
            "metadata": {"name": "s"},
            "spec": {"data": [{"value": "b"}, {"value": "y"}]},
        }
    ]
    (diff,) = drift.drift(left, right, [entry])
    assert drift.format_path(diff.path) == "spec.data[1].value"
