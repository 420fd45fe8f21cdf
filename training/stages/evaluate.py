"""Stage 3 — evaluate: per-file metrics on the test split, with and without test-time hospital noise.

A file's probability is the mean over its windows; metrics at the bundle's threshold: accuracy, F1,
sensitivity, specificity, ROC AUC, and the confusion matrix as an image. Output `evaluate/<key>/`:
`metrics.json`, `predictions.json`, `confusion_clean.png`, `confusion_noisy.png`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from spira_core import windows as W
from spira_core.model import predict_windows
from training import metrics as M
from training.stages import features as features_stage
from training.stages import train as train_stage
from training.stages.common import Built, RunContext, Stage, StageInputs

CONDITIONS = ("clean", "noisy")


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """{"clean": {"f1": …}} → {"f1_clean": …}: the names publish compares and MLflow records."""
    return {f"{name}_{cond}": value for cond, values in metrics.items() for name, value in values.items()}


def build(_: RunContext, inputs: StageInputs) -> Built:
    feats, trained = inputs["features"], inputs["train"]
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
    return Built(files, {"metrics": flat_metrics(scalar)})


STAGE = Stage("evaluate", __name__, needs=("features", "train"), params=lambda _: {}, compute=build)
