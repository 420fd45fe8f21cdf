"""Stage 3 — evaluate: per-file metrics on the test split, with and without test-time hospital noise.

A file's probability is the mean over its windows; metrics at the bundle's threshold: accuracy, F1,
sensitivity, specificity, ROC AUC, and the confusion matrix as an image. Output `evaluate/<key>/`:
`metrics.json`, `predictions.json`, `confusion_clean.png`, `confusion_noisy.png`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from spira_core import windows as W
from spira_core.model import predict_windows
from training import metrics as M
from training.artifacts import code_version, find_output, stage_key, write_output
from training.ports import ArtifactStore, Clock
from training.stages import features as features_stage
from training.stages import train as train_stage
from training.stages.common import StageNotReady, StageResult

STAGE = "evaluate"
CODE = ("spira_core.windows", "training.metrics", __name__)
CONDITIONS = ("clean", "noisy")


def key_inputs(features_key: str, train_key: str) -> dict[str, Any]:
    return {"features": features_key, "train": train_key, "code": code_version(CODE)}


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """{"clean": {"f1": …}} → {"f1_clean": …}: the names publish compares and MLflow records."""
    return {f"{name}_{cond}": value for cond, values in metrics.items() for name, value in values.items()}


def run(
    store: ArtifactStore, features_key: str, train_key: str, clock: Clock, progress: Callable[..., Any]
) -> StageResult:
    start = clock.now()
    inputs = key_inputs(features_key, train_key)
    key = stage_key(STAGE, inputs)
    done = find_output(store, STAGE, key)
    if done is not None:
        return StageResult(STAGE, key, True, done, clock.now() - start)
    feats = find_output(store, features_stage.STAGE, features_key)
    trained = find_output(store, train_stage.STAGE, train_key)
    if feats is None or trained is None:
        raise StageNotReady(f"train {train_key} is not in the store: run 'spira pipeline train' first")
    test = features_stage.read_feature_set(feats.read("frames.npy"), feats.read("index.json"))["test"]
    if not test:
        raise ValueError("the test split is empty: the dataset is too small to evaluate")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = train_stage.read_bundle(trained, Path(tmp))
    labels = np.array([f.label for f in test])
    metrics: dict[str, dict[str, float]] = {}
    predictions: list[dict[str, Any]] = [{"file": f.file, "label": f.label} for f in test]
    files: dict[str, bytes] = {}
    for cond in CONDITIONS:
        windows = [W.file_windows(f.variant(cond), bundle.params) for f in test]
        probs = W.aggregate_by_file(
            predict_windows(bundle.model, np.concatenate(windows)) if windows else np.zeros(0),
            [len(w) for w in windows],
        )
        metrics[cond] = M.binary_metrics(labels, probs, bundle.threshold)
        for row, p in zip(predictions, probs, strict=True):
            row[f"probability_{cond}"] = round(float(p), 6)
        matrix = M.confusion(labels, (probs >= bundle.threshold).astype(int))
        metrics[cond]["confusion"] = matrix.tolist()
        title = f"test, {'with' if cond == 'noisy' else 'without'} hospital noise (n={len(test)})"
        files[f"confusion_{cond}.png"] = M.confusion_png(matrix, title)
    files["metrics.json"] = (json.dumps(metrics, sort_keys=True, indent=2) + "\n").encode()
    files["predictions.json"] = (json.dumps(predictions, sort_keys=True, indent=1) + "\n").encode()
    scalar = {c: {k: v for k, v in m.items() if k != "confusion"} for c, m in metrics.items()}
    out = write_output(store, STAGE, key, inputs, files, {"metrics": flat_metrics(scalar)})
    return StageResult(STAGE, key, False, out, clock.now() - start)
