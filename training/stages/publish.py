"""Stage 4 — publish: one MLflow run for the pipeline run, a registered model version, and the decision.

The run carries the preset's parameters, the feature parameters, per-epoch training metrics, the test
metrics (clean and noisy), the dataset fingerprint, the git commit, the confusion-matrix images and the
model bundle. The bundle is registered as a new version of the model. The decision is the clinical gate on
the frozen holdout (spira_core.clinical): this model and the version aliased `champion` are both scored
in-process on the same holdout, and the alias `candidate` moves to the new version when it is non-inferior
by the margins of the clinical thresholds file (or, with no champion yet, reaches its floors). With no
frozen holdout, only a first model becomes a candidate: test metrics of different runs measure different
test sets and decide nothing. The verdict and this version's scores are logged with the run
(`clinical/verdict.json`, `clinical/scores.json`: the recorded result a later `spira gate clinical`
compares against), the holdout version and verdict are tags of the version, and the reason is recorded on
the version (tag `candidate_reason`) and in the stage's `publish.json`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from training.ports import ModelVersionInfo, RunRecord
from training.presets import Preset
from training.stages import train as train_stage
from training.stages.common import Built, RunContext, Stage, StageInputs

MODEL_NAME = "spira-respiratory"
CANDIDATE, CHAMPION = "candidate", "champion"
PASS = "PASS"


def params(ctx: RunContext) -> dict[str, Any]:
    holdout = ctx.data.holdout
    return {
        "model_name": MODEL_NAME,
        "registry": ctx.registry()[1],
        "holdout": holdout.holdout.sha256 if holdout else None,
        "clinical_thresholds": ctx.clinical_thresholds,
    }


def decide(verdict: dict[str, Any] | None, champion: ModelVersionInfo | None) -> tuple[bool, str]:
    """(becomes candidate?, why) from the clinical verdict on the holdout (None: no frozen holdout) —
    pure, so every branch is unit-tested."""
    if verdict is None:
        if champion is None:
            return True, "no champion yet (no frozen holdout to judge on: run 'spira holdout freeze')"
        return False, (
            f"no frozen holdout to compare with champion v{champion.version} on: run 'spira holdout freeze'"
        )
    version = verdict["holdout"]["version"]
    against = f"champion v{champion.version}" if champion else "the floors (no champion yet)"
    if verdict["verdict"] == PASS:
        return True, f"clinical gate PASS on holdout {version} against {against}"
    first = verdict["reasons"][0] if verdict["reasons"] else ""
    return False, f"clinical gate FAIL on holdout {version} against {against}: {first}"


def clinical_verdict(ctx: RunContext, bundle: Any, champion: ModelVersionInfo | None) -> tuple[Any, Any]:
    """(verdict, this model's scores) on the frozen holdout, both bundles scored in-process; (None, None)
    without a holdout."""
    from spira_core.clinical import thresholds as clinical_thresholds
    from spira_core.clinical.verdict import judge
    from spira_core.model import load_bundle
    from training.holdout import score_bundle

    opened = ctx.data.holdout
    if opened is None:
        return None, None
    thresholds = clinical_thresholds.load(ctx.clinical_thresholds)
    scores = score_bundle(opened, bundle, "this version")
    baseline = None
    if champion is not None:
        with tempfile.TemporaryDirectory() as tmp:
            folder = ctx.registry()[0].download_model(MODEL_NAME, champion.version, Path(tmp))
            baseline = score_bundle(opened, load_bundle(folder), champion.version)
    return judge(opened.holdout, scores, baseline, thresholds), scores


def _json(doc: Any) -> bytes:
    return (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()


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
    run_tags = {
        **tags,
        "preset": preset.name,
        "dataset_fingerprint": report["dataset_fingerprint"],
        "features_key": features_key,
        "train_key": train_key,
        "evaluate_key": evaluate_key,
    }
    champion = registry.version_by_alias(MODEL_NAME, CHAMPION)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        bundle = train_stage.read_bundle(trained, model_dir)
        verdict, scores = clinical_verdict(ctx, bundle, champion)
        clinical = {}
        if verdict is not None:
            from spira_core.clinical.verdict import recorded_document

            clinical = {
                "clinical/verdict.json": _json(verdict),
                "clinical/scores.json": _json(recorded_document(ctx.data.holdout.holdout, scores)),
            }
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
                **clinical,
            },
            model_dir=model_dir,
        )
        run_id = registry.log_run(record)
    is_candidate, reason = decide(verdict, champion)
    version_tags = {f"metric.{k}": f"{v:.6f}" for k, v in sorted(metrics.items()) if isinstance(v, float)}
    version_tags.update({"candidate_reason": reason, **run_tags})
    if verdict is not None:
        version_tags.update(
            {
                "clinical.holdout_version": verdict["holdout"]["version"],
                "clinical.verdict": verdict["verdict"],
            }
        )
    version = registry.register(MODEL_NAME, run_id, version_tags)
    if is_candidate:
        registry.set_alias(MODEL_NAME, CANDIDATE, version.version)
    decision = {
        "model_name": MODEL_NAME,
        "version": version.version,
        "run_id": run_id,
        "candidate": is_candidate,
        "reason": reason,
        "champion_version": champion.version if champion else None,
        "holdout_version": verdict["holdout"]["version"] if verdict else None,
        "clinical_verdict": verdict["verdict"] if verdict else None,
    }
    files = {"publish.json": _json(decision)}
    if verdict is not None:
        files["verdict.json"] = _json(verdict)
    return Built(files, decision)


STAGE = Stage("publish", __name__, needs=("features", "train", "evaluate"), params=params, compute=build)
