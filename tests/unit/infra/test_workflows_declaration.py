"""The continuous-training declaration (infra/environments.yaml `training_workflow`): a stage's step
settings are the defaults with its own entry over them, every environment has a preset and a schedule
(local's is the base's in argocd/), and a misspelt setting is refused by name rather than ignored."""

from __future__ import annotations

import copy

import pytest
import yaml

from infra.environments import DeclarationError, declared
from infra.workflows import DECLARATION, parse, training_workflow

RAW = yaml.safe_load(DECLARATION.read_text())


def test_a_stage_without_an_entry_runs_with_the_defaults_and_train_with_its_own():
    wf = training_workflow()
    assert wf.step("evaluate") == wf.defaults
    train = wf.step("train")
    assert (train.cpu, train.memory, train.retries) == ("4", "16Gi", 2)
    assert train.backoff_s == wf.defaults.backoff_s  # not overridden: the default


def test_every_environment_has_a_preset_and_a_schedule_the_base_being_locals():
    wf = training_workflow()
    assert set(wf.presets) == set(declared().names) and set(wf.schedules) == set(declared().names)
    assert wf.schedule("local") == wf.schedules["local"]
    with pytest.raises(ValueError, match="unknown environment"):
        wf.schedule("qa")


def test_a_misspelt_step_setting_is_refused_by_name():
    raw = copy.deepcopy(RAW)
    raw["training_workflow"]["steps"]["train"]["memroy"] = "1Gi"
    with pytest.raises(DeclarationError, match="memroy"):
        parse(raw)


def test_a_cluster_without_a_schedule_is_refused():
    raw = copy.deepcopy(RAW)
    del raw["training_workflow"]["schedule"]["production"]
    with pytest.raises(DeclarationError, match="schedule"):
        parse(raw)
