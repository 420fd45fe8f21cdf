"""The training pipeline against the real local stack (OpenBao, SeaweedFS, MLflow).

- `spira data synth` → `spira pipeline run --preset fast` (settings from Vault, as a Job gets them) → a
  registered `spira-respiratory` version carrying alias `candidate` and the run's evidence in MLflow.
- S3 stopped while `train` runs → the stage fails with a clear message; after S3 is back, the rerun skips
  `features` (not recomputed: its objects are untouched) and resumes from `train`.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from spira.local_server import run_spira
from spira.secrets.seed import read_secret
from spira.stack.net import wait_until
from tests.fixtures.model import pipeline_run_args
from training.data.synth import SynthParams, synthesize
from training.ports import ServiceUnavailable
from training.presets import get_preset
from training.stages.publish import MODEL_NAME
from training.wiring import build_pipeline

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


def test_s3_killed_during_train_then_restarted_resumes_without_recomputing_features(
    local_stack, local_stack_handle, tmp_path, monkeypatch
):
    data = synthesize(SynthParams(n=24, seed=5), tmp_path / "data")
    training = read_secret(local_stack.vault_client(), "local", "training")
    # build_registry sets MLflow's credentials in this process: give the operator's back afterwards.
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(key, os.environ.get(key, ""))
    settings = {
        "mlflow_username": training["mlflow_username"],
        "mlflow_password": training["mlflow_password"],
        "s3_endpoint": local_stack.s3_endpoint,
        "s3_access_key": local_stack.s3_access_key,
        "s3_secret_key": local_stack.s3_secret_key,
        "features_bucket": f"training-fault-{uuid.uuid4().hex[:8]}",
        "mlflow_tracking_uri": local_stack.mlflow_uri,
    }
    preset = get_preset("fast").with_overrides(epochs=1)
    s3 = local_stack_handle.s3
    stopped = []

    def stop_s3_when_training_starts(iterable, desc="", unit=""):
        if desc == "train" and not stopped:
            s3.process().stop()
            stopped.append(True)
        return iterable

    pipeline = build_pipeline(
        settings, data.dataset_csv, data.noise_csv, preset, stop_s3_when_training_starts
    )
    try:
        with pytest.raises(ServiceUnavailable, match=r"S3 at .* failed"):
            pipeline.run_all()
        assert stopped
    finally:
        if not s3.answering():
            s3.process().start()
        assert wait_until(s3.healthy, 90), "SeaweedFS did not come back"

    bucket = local_stack.s3_client()

    def objects_readable() -> bool:
        # SeaweedFS lists buckets before its volume server is back; "recovered" means objects read again
        try:
            listed = bucket.list_objects_v2(Bucket=settings["features_bucket"], Prefix="pipeline/features/")
            bucket.get_object(Bucket=settings["features_bucket"], Key=listed["Contents"][0]["Key"])[
                "Body"
            ].read()
            return True
        except Exception:
            return False

    assert wait_until(objects_readable, 120), "SeaweedFS does not serve objects after its restart"
    before = {
        o["Key"]: (o["ETag"], o["LastModified"])
        for o in bucket.list_objects_v2(Bucket=settings["features_bucket"], Prefix="pipeline/features/")[
            "Contents"
        ]
    }
    assert any(k.endswith("manifest.json") for k in before)

    results = build_pipeline(settings, data.dataset_csv, data.noise_csv, preset).run_all()
    assert [(r.stage, r.skipped) for r in results] == [
        ("features", True),
        ("train", False),
        ("evaluate", False),
        ("publish", False),
    ]
    after = bucket.list_objects_v2(Bucket=settings["features_bucket"], Prefix="pipeline/features/")[
        "Contents"
    ]
    assert {o["Key"]: (o["ETag"], o["LastModified"]) for o in after} == before
