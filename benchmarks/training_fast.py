"""The fast preset's quality and cost: train on one synthetic seed, test on files of another seed.

    python -m benchmarks.training_fast --n 240 --seed 1 --heldout-n 120 --heldout-seed 2
    python -m benchmarks.training_fast --n 240 --seed 3 --heldout-n 120 --heldout-seed 2

`--epochs`, `--learning-rate`, `--warmup-steps`, `--early-stop-epochs`, `--batch-files`, `--ema-decay` and
`--raw-input` (no input standardisation, as SPIRA) override the preset (the JSON shows the training
parameters used).

Runs the real stages (features → train → evaluate) on an in-memory store, then scores the trained
bundle on every file of an independently generated held-out dataset, per file (mean over windows), clean and
with test-time hospital noise (the held-out noise clips, seeded per file). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spira_core import audio, augment
from spira_core.model import load_bundle
from training.adapters.memory import MemoryStore
from training.adapters.system import SeededRandom, SystemClock
from training.data import load_dataset_csv, load_noise_csv
from training.data.synth import SynthParams, synthesize
from training.metrics import binary_metrics
from training.pipeline import Pipeline
from training.presets import get_preset
from training.stages import train as train_stage


def _heldout_scores(bundle, dataset_csv: Path, noise_csv: Path, preset) -> dict[str, dict[str, float]]:
    examples = load_dataset_csv(dataset_csv)
    rate = bundle.params.sample_rate
    noises = [audio.load_audio(p, rate) for p in load_noise_csv(noise_csv)]
    labels, clean, noisy = [], [], []
    for ex in examples:
        try:
            wav = audio.load_audio(ex.path, rate)
        except audio.AudioError:
            continue
        labels.append(ex.label)
        clean.append(bundle.predict_waveform(wav))
        rng = augment.file_rng(preset.seed, f"heldout:{ex.path.name}")
        noisy.append(bundle.predict_waveform(augment.add_noise(wav, ex.label, noises, preset.noise, rng)))
    y = np.array(labels)
    return {
        "clean": binary_metrics(y, np.array(clean), bundle.threshold),
        "noisy": binary_metrics(y, np.array(noisy), bundle.threshold),
    }


def _progress(iterable, desc: str = "", unit: str = "it"):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit=unit, mininterval=10, file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--n", type=int, default=240)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--heldout-n", type=int, default=120)
    ap.add_argument("--heldout-seed", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None, help="reuse synthetic data from this folder")
    ap.add_argument("--epochs", type=int, default=None, help="override the preset's epoch count")
    ap.add_argument("--learning-rate", type=float, default=None, help="override the preset's peak lr")
    ap.add_argument("--warmup-steps", type=int, default=None, help="override the preset's Noam warm-up")
    ap.add_argument("--early-stop-epochs", type=int, default=None, help="override the preset's patience")
    ap.add_argument("--batch-files", type=int, default=None, help="override the preset's files per batch")
    ap.add_argument("--ema-decay", type=float, default=None, help="override the preset's weight average")
    ap.add_argument(
        "--raw-input", action="store_true", help="no input standardisation (SPIRA's raw MFCC input)"
    )
    ap.add_argument("--save-bundle", type=Path, default=None, help="also keep the trained bundle here")
    args = ap.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="spira-bench-"))
    train_dir, held_dir = (
        work / f"train-{args.n}-{args.seed}",
        work / f"heldout-{args.heldout_n}-{args.heldout_seed}",
    )
    if not (train_dir / "dataset.csv").exists():
        synthesize(SynthParams(n=args.n, seed=args.seed), train_dir)
    if not (held_dir / "dataset.csv").exists():
        synthesize(SynthParams(n=args.heldout_n, seed=args.heldout_seed), held_dir)

    preset = get_preset(args.preset).with_overrides(
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        early_stop_epochs=args.early_stop_epochs,
        batch_files=args.batch_files,
        ema_decay=args.ema_decay,
        standardize_input=False if args.raw_input else None,
    )
    # publish is left out: it only registers the bundle, which is scored here directly
    pipeline = Pipeline.from_csv(
        train_dir / "dataset.csv",
        train_dir / "noise.csv",
        store=MemoryStore(),
        clock=SystemClock(),
        random=SeededRandom(preset.seed),
        preset=preset,
        progress=_progress,
    )
    timings = {}
    results = {}
    for stage in ("features", "train", "evaluate"):
        t0 = time.perf_counter()
        results[stage] = pipeline.run(stage)
        timings[stage] = round(time.perf_counter() - t0, 1)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = train_stage.read_bundle(results["train"].output, Path(tmp))
        bundle = load_bundle(tmp)
        if args.save_bundle is not None:
            shutil.copytree(tmp, args.save_bundle, dirs_exist_ok=True)
    t0 = time.perf_counter()
    heldout = _heldout_scores(bundle, held_dir / "dataset.csv", held_dir / "noise.csv", preset)
    timings["heldout_scoring"] = round(time.perf_counter() - t0, 1)
    summary = results["train"].output.read_json("train.json")
    print(
        json.dumps(
            {
                "preset": preset.name,
                "train_params": preset.train_params(),
                "train_data": {"n": args.n, "seed": args.seed},
                "heldout_data": {"n": args.heldout_n, "seed": args.heldout_seed},
                "seconds": timings,
                "train": {
                    k: summary[k]
                    for k in ("epochs_run", "best_epoch", "best_val_loss", "train_files", "val_files")
                },
                "in_split_test": results["evaluate"].output.info["metrics"],
                "heldout": heldout,
                "machine": {
                    "cpus": torch.get_num_threads(),
                    "python": platform.python_version(),
                    "torch": torch.__version__,
                },
            },
            indent=2,
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
