"""Continuous training's objects in the GitOps tree (spira/manifests/training.py): the committed base and
overlay patches are what the generator makes, every overlay applies its patches, a patch changes values
and never the shape, and the AppProject permits exactly the kinds the overlays render."""

from __future__ import annotations

import pytest
import yaml

from spira.manifests import contracts, training
from spira.manifests.generate import GenerateError
from spira.workflow import render as R
from tests.unit.manifests.helpers import docs


def test_the_committed_training_files_are_what_the_generator_makes_and_every_overlay_applies_its_patches():
    assert training.stale() == []
    assert training.unreferenced() == []


def test_an_overlay_that_does_not_apply_its_training_patch_is_caught():
    def without_sensor_patch(path):
        kustomization = yaml.safe_load(path.read_text())
        if "production" in str(path):
            kustomization["patches"] = [
                p for p in kustomization["patches"] if p["path"] != "training-sensor-patch.yaml"
            ]
        return kustomization

    assert training.unreferenced(without_sensor_patch) == [
        "argocd/overlays/production/kustomization.yaml does not apply training-sensor-patch.yaml"
    ]


def test_a_patch_changes_values_each_guarded_by_a_test_and_never_the_shape():
    base = {"spec": {"arguments": {"parameters": [{"name": "env", "value": "local"}]}, "schedules": ["a"]}}
    target = {
        "spec": {"arguments": {"parameters": [{"name": "env", "value": "staging"}]}, "schedules": ["b"]}
    }
    assert training.json_patch(base, target) == [
        {"op": "test", "path": "/spec/arguments/parameters/0/name", "value": "env"},
        {"op": "replace", "path": "/spec/arguments/parameters/0/value", "value": "staging"},
        {"op": "test", "path": "/spec/schedules/0", "value": "a"},
        {"op": "replace", "path": "/spec/schedules/0", "value": "b"},
    ]
    with pytest.raises(GenerateError, match="keys differ"):
        training.json_patch(base, {"spec": {}})
    with pytest.raises(GenerateError, match="items in the base"):
        training.json_patch({"a": [1]}, {"a": [1, 2]})


@pytest.mark.parametrize("env", ["staging", "production"])
def test_the_project_permits_exactly_the_kinds_the_overlay_renders(env):
    """Nothing permitted that no overlay renders; the five training kinds among what is."""
    project, _ = contracts.bootstrap_templates()
    permitted = {(e["group"], e["kind"]) for e in project["spec"]["namespaceResourceWhitelist"]}
    rendered = {(d["apiVersion"].rpartition("/")[0], d["kind"]) for d in docs(env)}
    assert permitted == rendered
    assert {("argoproj.io", kind) for kind in R.KINDS} <= permitted
