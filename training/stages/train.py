"""Stage 2 — train: SpiraConvV2 on the features stage's windows, best checkpoint by validation loss.

Adam (lr, weight decay), Noam warm-up, BCE on every window, batches of `batch_files` files (all of a file's
windows together, as SPIRA did), early stopping after `early_stop_epochs` epochs without a better
validation loss (0 disables it). With `ema_decay` > 0 an exponential moving average of the weights is what
validation scores and the checkpoint keeps (SPIRA kept the raw weights). Everything random comes from the preset's seed, and deterministic
kernels on CPU are deterministic, so a CPU run with a given seed reproduces the same weights.

Output `train/<key>/`: the model bundle (`model/…`, with the drift reference of the training frames that
serving's input monitoring compares uploads with), `history.json` (per-epoch metrics), `train.json`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spira_core import windows as W
from spira_core.model import (
    DRIFT_REFERENCE_FILE,
    ModelBundle,
    build_model,
    load_bundle,
    save_bundle,
    weights_digest,
)
from spira_core.monitoring import DriftReference
from spira_core.params import FeatureParams
from training.artifacts import StageOutput
from training.fast_layers import use_fast_layers
from training.ports import RandomSource
from training.presets import Preset
from training.stages import features as features_stage
from training.stages.common import Built, RunContext, Stage, StageInputs
from training.stages.features import FileFeatures
from training.validation import score_windows

BUNDLE_FILES = ("bundle.json", "feature_params.json", "weights.bin", "weights.json", DRIFT_REFERENCE_FILE)


def noam_factor(warmup_steps: int) -> Callable[[int], float]:
    """SPIRA's NoamLR: lr = base · w^0.5 · min(step · w^-1.5, step^-0.5), rising to base at step w."""
    w = float(max(warmup_steps, 1))

    def factor(step: int) -> float:
        s = max(step, 1)
        return w**0.5 * min(s * w**-1.5, s**-0.5)

    return factor


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Seed torch's global generator (dropout, init) for the block and restore its state afterwards.

    CPU kernels used here are deterministic for a fixed thread count, so seeding is enough; enabling
    torch.use_deterministic_algorithms would import torch's compiler stack (~15 s) for no change.
    """
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def _stack(files: list[FileFeatures], params: FeatureParams, variant: str) -> tuple[np.ndarray, np.ndarray]:
    xs = [W.file_windows(f.variant(variant), params) for f in files]
    ys = [np.full(len(x), f.label, dtype=np.float32) for f, x in zip(files, xs, strict=True)]
    return np.concatenate(xs), np.concatenate(ys)


def mean_bce(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy, with each log clamped at -100 as torch's BCELoss does."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_p, log_q = np.maximum(np.log(p), -100.0), np.maximum(np.log1p(-p), -100.0)
    return float(-np.mean(y * log_p + (1.0 - y) * log_q)) if len(y) else 0.0


def validation_loss(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """The eval-mode BCE over every validation window (training.validation picks the fast or eager path)."""
    return mean_bce(score_windows(model, x), y)


@torch.no_grad()
def _update_average(average: nn.Module, model: nn.Module, decay: float) -> None:
    """average ← decay·average + (1 − decay)·model, parameter by parameter (the buffers are constants)."""
    for avg, current in zip(average.parameters(), model.parameters(), strict=True):
        avg.lerp_(current, 1.0 - decay)


def input_statistics(files: list[FileFeatures]) -> tuple[np.ndarray, np.ndarray]:
    """Per-coefficient mean and deviation over every clean frame of `files` (float64); a coefficient that
    never varies keeps deviation 1, so it is centred but not blown up."""
    frames = np.concatenate([f.variant("clean") for f in files]).astype(np.float64)
    mean, std = frames.mean(axis=0), frames.std(axis=0)
    return mean, np.where(std > 1e-6, std, 1.0)


def drift_reference(files: list[FileFeatures]) -> DriftReference:
    """Training's MFCC histogram per coefficient (every clean frame of `files`): what serving's drift score
    compares a site's uploads with (docs/serving.md, "Input monitoring")."""
    return DriftReference.from_frames(np.concatenate([f.variant("clean") for f in files]))


def fit(
    data: dict[str, list[FileFeatures]],
    params: FeatureParams,
    preset: Preset,
    rng: RandomSource,
    progress: Callable[..., Any],
) -> tuple[nn.Module, list[dict[str, float]], dict[str, Any]]:
    """Train and return (best model, per-epoch history, summary)."""
    train_files, val_files = data["train"], data["val"] or data["train"]
    if not 0.0 <= preset.ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {preset.ema_decay}")
    if not train_files:
        raise ValueError("no training files: the dataset is empty after excluding unreadable audio")
    variants = sorted({v for f in train_files for v in f.variants if v.startswith("noise")})
    if preset.train_on_clean or not variants:
        variants = ["clean", *variants]
    # checkpoints are chosen on every validation window, clean and with test-time noise: the noisy windows
    # alone swing from epoch to epoch (36 files at n=240) and made early stopping fire on noise
    val_variants = ["clean"] + (["noisy"] if any("noisy" in f.variants for f in val_files) else [])
    val_sets = [_stack(val_files, params, v) for v in val_variants]
    val_x = np.concatenate([x for x, _ in val_sets])
    val_y = np.concatenate([y for _, y in val_sets])

    with seeded_torch(rng.int_seed("init")):
        # the same network with cheaper CPU kernels for Mish, pooling and dropout (~1.6x per step)
        model = use_fast_layers(build_model(params))
        if preset.standardize_input:
            model.set_input_standardization(*input_statistics(train_files))
        optimizer = torch.optim.Adam(
            model.parameters(), lr=preset.learning_rate, weight_decay=preset.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, noam_factor(preset.warmup_steps))
        criterion = nn.BCELoss()
        # the model validation scores: the raw weights, or their moving average (a copy updated in place)
        scored = copy.deepcopy(model) if preset.ema_decay else model
        best_loss, best_state, best_epoch, stale = float("inf"), None, -1, 0
        history: list[dict[str, float]] = []
        bar = progress(range(preset.epochs), desc="train", unit="epoch")
        for epoch in bar:
            erng = rng.numpy("epoch", epoch)
            variant = variants[epoch % len(variants)]
            order = erng.permutation(len(train_files))
            model.train()
            losses, sizes = [], []
            for start in range(0, len(order), preset.batch_files):
                batch = [train_files[i] for i in order[start : start + preset.batch_files]]
                xs = [W.training_windows(f.variant(variant), params, erng) for f in batch]
                x = torch.from_numpy(np.concatenate(xs))
                y = torch.from_numpy(
                    np.concatenate(
                        [np.full(len(w), f.label, np.float32) for f, w in zip(batch, xs, strict=True)]
                    )
                )
                loss = criterion(model(x).reshape(-1), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                if scored is not model:
                    _update_average(scored, model, preset.ema_decay)
                losses.append(loss.item())
                sizes.append(len(y))
            train_loss = float(np.average(losses, weights=sizes))
            val_loss = validation_loss(scored, val_x, val_y)
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "lr": optimizer.param_groups[0]["lr"],
                }
            )
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
            if val_loss < best_loss:
                best_loss, best_state, best_epoch, stale = (
                    val_loss,
                    copy.deepcopy(scored.state_dict()),
                    epoch,
                    0,
                )
            else:
                stale += 1
                if preset.early_stop_epochs and stale >= preset.early_stop_epochs:
                    break
        assert best_state is not None
        model.load_state_dict(best_state)
        model.eval()
    summary = {
        "best_epoch": best_epoch,
        "best_val_loss": best_loss,
        "epochs_run": len(history),
        "stopped_early": len(history) < preset.epochs,
        "train_files": len(train_files),
        "val_files": len(val_files),
        "val_variants": val_variants,
        "val_windows": len(val_y),
        "train_windows_per_epoch": int(
            sum(len(W.file_windows(f.variant("clean"), params)) for f in train_files)
        )
        if params.temporal_mode != "random"
        else len(train_files),
        "weights_sha256": weights_digest(model),
    }
    return model, history, summary


def flip_labels(
    data: dict[str, list[FileFeatures]], fraction: float, rng: np.random.Generator
) -> dict[str, list[FileFeatures]]:
    """The training and validation files with `fraction` of each split's labels flipped (the test split is
    left alone): how a deliberately worse candidate is trained."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"label_noise must be in [0, 1], got {fraction}")
    out = dict(data)
    for split in ("train", "val"):
        files = list(data[split])
        for i in rng.permutation(len(files))[: round(fraction * len(files))]:
            files[i] = dataclasses.replace(files[i], label=1 - files[i].label)
        out[split] = files
    return out


def build(ctx: RunContext, inputs: StageInputs) -> Built:
    feats = inputs["features"]
    data = features_stage.read_feature_set(feats.read("frames.npy"), feats.read("index.json"))
    params, preset = ctx.preset.features, ctx.preset
    if preset.label_noise:
        data = flip_labels(data, preset.label_noise, ctx.random.numpy("label_noise"))
    model, history, summary = fit(data, params, preset, ctx.random, ctx.progress)
    bundle_meta = {
        "features_key": feats.key,
        "train_key": inputs.key,
        "preset": preset.name,
        "dataset_fingerprint": ctx.data.dataset_fingerprint,
    }
    with tempfile.TemporaryDirectory() as tmp:
        reference = drift_reference(data["train"])
        save_bundle(ModelBundle(model, params, preset.threshold, bundle_meta, reference), tmp)
        files = {f"model/{name}": (Path(tmp) / name).read_bytes() for name in BUNDLE_FILES}
    files["history.json"] = (json.dumps(history, indent=1) + "\n").encode()
    files["train.json"] = (json.dumps(summary, sort_keys=True, indent=2) + "\n").encode()
    return Built(files, summary)


STAGE = Stage(
    "train",
    __name__,
    needs=("features",),
    params=lambda ctx: {"train": ctx.preset.train_params()},
    compute=build,
)


def read_bundle(output: StageOutput, directory: Path) -> ModelBundle:
    """Materialise the stage's model bundle into `directory` and load it (every `model/` file of the
    stage's manifest: a bundle trained before the drift reference has none)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in output.manifest["files"]:
        if name.startswith("model/"):
            (directory / name.removeprefix("model/")).write_bytes(output.read(name))
    return load_bundle(directory)
