"""Stage 4 — publish: one MLflow run for the pipeline run, a registered model version, and the decision.

The run carries the preset's parameters, the feature parameters, per-epoch training metrics, the test
metrics (clean and noisy), the dataset fingerprint, the git commit, the confusion-matrix images and the
model bundle. The bundle is registered as a new version of the model; the alias `candidate` moves to it
when it beats the version aliased `champion` on the preset's metric, or when there is no champion. The
reason is recorded on the version (tag `candidate_reason`) and in the stage's `publish.json`.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from training.ports import ModelVersionInfo, RunRecord
from training.presets import Preset
from training.stages import train as train_stage
from training.stages.common import Built, RunContext, Stage, StageInputs

MODEL_NAME = "spira-respiratory"
CANDIDATE, CHAMPION = "candidate", "champion"


def params(ctx: RunContext) -> dict[str, Any]:
    return {"model_name": MODEL_NAME, "metric": ctx.preset.publish_metric, "registry": ctx.registry()[1]}


def decide(metric: str, value: float, champion: ModelVersionInfo | None) -> tuple[bool, str]:
    """(becomes candidate?, why) — pure, so every branch is unit-tested."""
    if value is None or math.isnan(value):
        return False, f"{metric} is undefined for this model; not a candidate"
    if champion is None:
        return True, f"no champion yet; {metric} = {value:.4f}"
    recorded = champion.tags.get(f"metric.{metric}")
    if recorded is None:
        return True, f"champion v{champion.version} has no recorded {metric}; {metric} = {value:.4f}"
    best = float(recorded)
    if value > best:
        return True, f"{metric} {value:.4f} beats champion v{champion.version} ({best:.4f})"
    return False, f"{metric} {value:.4f} does not beat champion v{champion.version} ({best:.4f})"


def _params(preset: Preset) -> dict[str, str]:
    out = {f"preset.{k}": str(v) for k, v in preset.to_dict().items() if k not in ("features", "noise")}
    out.update({f"features.{k}": str(v) for k, v in preset.features.to_dict().items()})
    out.update({f"noise.{k}": str(v) for k, v in preset.noise.to_dict().items()})
    return out


def build(ctx: RunContext, inputs: StageInputs) -> Built:
    feats, trained, evaluated = inputs["features"], inputs["train"], inputs["evaluate"]
    preset, tags = ctx.preset, ctx.tags
    registry = ctx.registry()[0]
    features_key, train_key, evaluate_key = feats.key, trained.key, evaluated.key

    metrics = dict(evaluated.info["metrics"])
    summary = trained.read_json("train.json")
    metrics["best_val_loss"] = summary["best_val_loss"]
    report = feats.read_json("report.json")
    if preset.publish_metric not in metrics:
        raise ValueError(f"publish metric {preset.publish_metric!r} is not among {sorted(metrics)}")
    run_tags = {
        **tags,
        "preset": preset.name,
        "dataset_fingerprint": report["dataset_fingerprint"],
        "features_key": features_key,
        "train_key": train_key,
        "evaluate_key": evaluate_key,
    }
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        train_stage.read_bundle(trained, model_dir)
        record = RunRecord(
            name=f"{preset.name}-{train_key[:8]}",
            params=_params(preset),
            metrics=metrics,
            epoch_metrics=tuple(
                {k: v for k, v in row.items() if k != "epoch"} for row in trained.read_json("history.json")
            ),
            tags=run_tags,
            artifacts={
                "evaluation/confusion_clean.png": evaluated.read("confusion_clean.png"),
                "evaluation/confusion_noisy.png": evaluated.read("confusion_noisy.png"),
                "evaluation/metrics.json": evaluated.read("metrics.json"),
                "evaluation/predictions.json": evaluated.read("predictions.json"),
                "data/report.json": feats.read("report.json"),
                "feature_params.json": trained.read("model/feature_params.json"),
                "training/history.json": trained.read("history.json"),
            },
            model_dir=model_dir,
        )
        run_id = registry.log_run(record)
    metric, value = preset.publish_metric, float(metrics[preset.publish_metric])
    champion = registry.version_by_alias(MODEL_NAME, CHAMPION)
    is_candidate, reason = decide(metric, value, champion)
    version_tags = {f"metric.{k}": f"{v:.6f}" for k, v in sorted(metrics.items()) if isinstance(v, float)}
    version_tags.update({"candidate_reason": reason, "publish_metric": metric, **run_tags})
    version = registry.register(MODEL_NAME, run_id, version_tags)
    if is_candidate:
        registry.set_alias(MODEL_NAME, CANDIDATE, version.version)
    decision = {
        "model_name": MODEL_NAME,
        "version": version.version,
        "run_id": run_id,
        "candidate": is_candidate,
        "reason": reason,
        "metric": metric,
        "value": value,
        "champion_version": champion.version if champion else None,
    }
    files = {"publish.json": (json.dumps(decision, sort_keys=True, indent=2) + "\n").encode()}
    return Built(files, decision)


STAGE = Stage("publish", __name__, needs=("features", "train", "evaluate"), params=params, compute=build)
