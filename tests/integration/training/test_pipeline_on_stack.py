"""The training pipeline against the real local stack (OpenBao, SeaweedFS, MLflow).

- `spira data synth` → `spira pipeline run --preset fast` (settings from Vault, as a Job gets them) → a
  registered `spira-respiratory` version carrying alias `candidate` and the run's evidence in MLflow.

The object store stopped under a stage, and the resume, are tested at the workflow step's level
(tests/integration/workflow/test_steps_on_stack.py: the stage's command as its container runs it).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from spira.local_server import run_spira
from tests.fixtures.model import pipeline_run_args
from training.stages.publish import MODEL_NAME

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
EPOCHS = 2  # the registration path, not the model's quality (benchmarks/training_fast.py measures that)


def _spira(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_spira(args, env, timeout_s=900)


def test_synth_then_pipeline_run_registers_a_version_with_alias_candidate(local_stack, tmp_path):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    env = {**os.environ, **local_stack.service_env("training"), "PYTHONPATH": str(REPO)}
    data = tmp_path / "data"
    _spira(["data", "synth", "--out", str(data), "--n", "32", "--seed", "11"], env)
    client = MlflowClient(local_stack.mlflow_uri)
    try:
        champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    except MlflowException:
        champion = None

    outcome_file = tmp_path / "outcome.json"
    pipeline_run = pipeline_run_args(data, EPOCHS, outcome_file)
    run = _spira(pipeline_run, env)
    outcome = json.loads(outcome_file.read_text())
    decision = outcome["publish"]
    assert f"version {decision['version']}" in run.stdout

    version = client.get_model_version(MODEL_NAME, decision["version"])
    assert version.tags["candidate_reason"] == decision["reason"]
    if champion is None:
        assert decision["candidate"] is True
        assert client.get_model_version_by_alias(MODEL_NAME, "candidate").version == decision["version"]

    mlrun = client.get_run(decision["run_id"])
    assert len(mlrun.data.tags["dataset_fingerprint"]) == 64 and mlrun.data.tags["git_commit"]
    assert mlrun.data.params["features.n_mfcc"] == "40"
    for name in (
        "accuracy_clean",
        "f1_clean",
        "f1_noisy",
        "sensitivity_noisy",
        "specificity_noisy",
        "roc_auc_noisy",
    ):
        assert name in mlrun.data.metrics
    assert len(client.get_metric_history(decision["run_id"], "val_loss")) == int(EPOCHS)
    artifacts = {a.path for a in client.list_artifacts(decision["run_id"], "evaluation")}
    assert {"evaluation/confusion_clean.png", "evaluation/confusion_noisy.png"} <= artifacts
    model_files = {Path(a.path).name for a in client.list_artifacts(decision["run_id"], "model")}
    assert model_files == {
        "bundle.json",
        "feature_params.json",
        "weights.bin",
        "weights.json",
        "drift_reference.json",
    }

    # a second run with the same inputs skips every stage and registers nothing new
    again = _spira(pipeline_run, env)
    stages = json.loads(outcome_file.read_text())["stages"]
    assert all(s["skipped"] for s in stages), (stages, again.stderr[-2000:])
    assert f"version {decision['version']}" in again.stdout
