"""Tiny WAV datasets written into tmp_path, and a preset small enough for unit tests."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from spira_core.augment import NoiseConfig
from spira_core.params import FeatureParams
from tests.fakes.training import FakeRegistry, FixedClock, FixedSeed, InMemoryStore
from training.pipeline import Pipeline
from training.presets import Preset

TINY = Preset(
    name="tiny",
    features=FeatureParams(window_s=0.8, step_s=0.5),
    noise=NoiseConfig(num_noise_control=1, num_noise_patient=1),
    train_noise_variants=2,
    split_fractions=(0.5, 0.25, 0.25),
    seed=7,
    epochs=2,
    batch_files=4,
    warmup_steps=5,
    early_stop_epochs=0,
)


def _voice(rate: int, seconds: float, patient: bool, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    f0 = rng.uniform(110, 200)
    tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8))
    if patient:  # breathy and broken by pauses
        sig = 0.15 * tone + 0.2 * rng.standard_normal(t.size)
        sig *= (np.sin(2 * np.pi * 0.8 * t) > -0.3).astype(float)
    else:
        sig = 0.4 * tone + 0.01 * rng.standard_normal(t.size)
    return (0.8 * sig / np.abs(sig).max()).astype(np.float32)


@dataclass(frozen=True)
class TinyData:
    root: Path
    dataset_csv: Path
    noise_csv: Path


def write_dataset(
    root: Path, n_per_class: int = 6, bad: dict[str, bytes] | None = None, seed: int = 0
) -> TinyData:
    rng = np.random.default_rng(seed)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    (root / "noise").mkdir(exist_ok=True)
    rows = []
    for i in range(2 * n_per_class):
        label = i % 2
        rate = 48000 if i % 3 == 0 else 16000
        wav = _voice(rate, rng.uniform(1.6, 2.2), bool(label), rng)
        if i % 4 == 1:
            wav = np.stack([wav, wav * 0.5], axis=1)  # stereo
        name = f"clips/c{i:03d}.wav"
        sf.write(root / name, wav, rate, subtype="PCM_16")
        rows.append((name, label))
    for name, payload in (bad or {}).items():
        (root / name).write_bytes(payload)
        rows.append((name, 1))
    with open(root / "dataset.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file_path", "class", "note"])
        w.writerows([(n, lab, "x") for n, lab in rows])
    noise_rows = []
    for j in range(2):
        hum = np.sin(2 * np.pi * 60 * np.arange(16000 * 3) / 16000) + 0.3 * rng.standard_normal(16000 * 3)
        sf.write(root / f"noise/n{j}.wav", (0.3 * hum).astype(np.float32), 16000)
        noise_rows.append((f"noise/n{j}.wav",))
    with open(root / "noise.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file_path"])
        w.writerows(noise_rows)
    return TinyData(root, root / "dataset.csv", root / "noise.csv")


@pytest.fixture
def tiny_data(tmp_path: Path) -> TinyData:
    return write_dataset(tmp_path / "data")


def make_pipeline(data: TinyData, store=None, registry=None, preset: Preset = TINY) -> Pipeline:
    registry = registry or FakeRegistry()
    return Pipeline.from_csv(
        data.dataset_csv,
        data.noise_csv,
        store=store if store is not None else InMemoryStore(),
        clock=FixedClock(),
        random=FixedSeed(preset.seed),
        preset=preset,
        registry_factory=lambda: (registry, "fake://registry"),
        tags={"git_commit": "abc123"},
    )
