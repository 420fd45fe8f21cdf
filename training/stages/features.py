"""Stage 1 — features: decode every file, split, compute MFCC frames (clean and with hospital noise).

Output `features/<key>/`: `frames.npy` (all frames, float32 [sum T, n_mfcc]), `index.json` (per file and
variant: split, label, offset, length) and `report.json` (files that could not be read, excluded, with
counts). Variants: "clean" for every file; "noise<k>" (k < preset.train_noise_variants) for training files;
"noisy" (test-time noise, seeded per file) for validation and test files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spira_core import audio, augment
from spira_core import features as F
from spira_core.augment import file_rng
from training.artifacts import npy_bytes, npy_load
from training.data import Example, load_dataset_csv, load_noise_csv, stratified_split
from training.data.dataset import fingerprint_lines

if TYPE_CHECKING:
    from spira_core.clinical.source import OpenHoldout
from training.presets import Preset
from training.stages.common import Built, RunContext, Stage, StageInputs

SPLITS = ("train", "val", "test")
# errors a single bad file may raise while decoding; anything else is a bug and should surface
_BAD_AUDIO = (audio.AudioError, ValueError, RuntimeError, MemoryError)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def frozen_hashes(holdout: OpenHoldout | None) -> frozenset[str]:
    """The holdout's recordings as frozen (its clean copies: the noisy ones are made from them)."""
    from spira_core.clinical.holdout import HOSPITAL_NOISE

    if holdout is None:
        return frozenset()
    return frozenset(i.sha256 for i in holdout.holdout.items if i.condition.get("noise") != HOSPITAL_NOISE)


@dataclass(frozen=True)
class DataInputs:
    """The dataset and noise lists a run starts from, with their content fingerprints."""

    dataset_csv: Path
    examples: tuple[Example, ...]
    noise_paths: tuple[Path, ...]
    dataset_fingerprint: str
    noise_fingerprint: str
    # the frozen holdout: its recordings are excluded from every split, and publish judges on it
    holdout: OpenHoldout | None = None
    # content hashes of the dataset's recordings that are in the holdout (set by `load`)
    excluded: tuple[str, ...] = ()

    @classmethod
    def load(cls, dataset_csv: Path, noise_csv: Path, holdout: OpenHoldout | None = None) -> DataInputs:
        examples = tuple(load_dataset_csv(dataset_csv))
        noises = tuple(load_noise_csv(noise_csv))
        noise_fp = hashlib.sha256("\n".join(sorted(_sha256(p) for p in noises)).encode()).hexdigest()
        hashes = {e.path: _sha256(e.path) for e in examples}
        fingerprint = fingerprint_lines((hashes[e.path], e.label) for e in examples)
        held = frozen_hashes(holdout)
        excluded = tuple(sorted({h for h in hashes.values() if h in held}))
        return cls(Path(dataset_csv), examples, noises, fingerprint, noise_fp, holdout, excluded)

    @property
    def holdout_hashes(self) -> frozenset[str]:
        """The content hashes training must never see (the holdout's recordings as frozen)."""
        return frozen_hashes(self.holdout)

    def display(self, path: Path) -> str:
        """A file's name relative to the dataset CSV (stable wherever the dataset is mounted)."""
        return os.path.relpath(path, self.dataset_csv.resolve().parent)


def params(ctx: RunContext) -> dict[str, Any]:
    data, preset = ctx.data, ctx.preset
    return {
        "dataset": data.dataset_fingerprint,
        "noise": data.noise_fingerprint,
        "features": preset.features.to_dict(),
        "noise_config": preset.noise.to_dict(),
        "train_noise_variants": preset.train_noise_variants,
        "split": {"seed": preset.seed, "fractions": list(preset.split_fractions)},
        # only what the holdout takes out of this dataset: a holdout of other recordings keeps the key
        **({"holdout_excluded": list(data.excluded)} if data.excluded else {}),
    }


def _decode_all(
    items: list[tuple[Path, str]], rate: int, progress: Callable[..., Any]
) -> tuple[dict[Path, np.ndarray], list[dict[str, Any]]]:
    good: dict[Path, np.ndarray] = {}
    bad: list[dict[str, Any]] = []
    for path, name in progress(items, desc="decode", unit="file"):
        try:
            good[path] = audio.load_audio(path, rate)
        except _BAD_AUDIO as exc:
            bad.append({"file": name, "error": type(exc).__name__, "message": str(exc)})
    return good, bad


def compute(data: DataInputs, preset: Preset, progress: Callable[..., Any]) -> dict[str, bytes]:
    params, cfg, seed = preset.features, preset.noise, preset.seed
    names = {e.path: data.display(e.path) for e in data.examples}
    wavs, bad_files = _decode_all(
        [(e.path, names[e.path]) for e in data.examples], params.sample_rate, progress
    )
    labels = {e.path: e.label for e in data.examples}
    label_by_name = {names[e.path]: e.label for e in data.examples}
    for entry in bad_files:
        entry["label"] = label_by_name[entry["file"]]
    noise_items = [(p, str(p.name)) for p in data.noise_paths]
    noise_wavs, bad_noise = _decode_all(noise_items, params.sample_rate, progress)
    noises = [noise_wavs[p] for p in data.noise_paths if p in noise_wavs]
    use_noise = bool(noises) and (cfg.num_noise_control > 0 or cfg.num_noise_patient > 0)

    decoded = [e for e in data.examples if e.path in wavs]
    hashes = {e.path: _sha256(e.path) for e in decoded}
    in_holdout = data.holdout_hashes
    usable = [e for e in decoded if hashes[e.path] not in in_holdout]
    splits = stratified_split(usable, seed, preset.split_fractions)

    chunks: list[np.ndarray] = []
    index: list[dict[str, Any]] = []
    offset = 0

    def add(split: str, example: Example, variant: str, wav: np.ndarray) -> None:
        nonlocal offset
        feats = F.mfcc(wav, params)
        chunks.append(feats)
        index.append(
            {
                "split": split,
                "file": names[example.path],
                "sha256": hashes[example.path],
                "label": example.label,
                "variant": variant,
                "offset": offset,
                "frames": int(feats.shape[0]),
            }
        )
        offset += int(feats.shape[0])

    jobs = [(split, e) for split in SPLITS for e in getattr(splits, split)]
    for split, example in progress(jobs, desc="features", unit="file"):
        wav, sha = wavs[example.path], hashes[example.path]
        add(split, example, "clean", wav)
        if not use_noise:
            continue
        if split == "train":
            for k in range(preset.train_noise_variants):
                rng = file_rng(seed, f"train:{k}:{sha}")
                add(split, example, f"noise{k}", augment.add_noise(wav, example.label, noises, cfg, rng))
        else:
            rng = file_rng(seed, f"test:{sha}")  # test-time noise: the same for this file on every run
            add(split, example, "noisy", augment.add_noise(wav, example.label, noises, cfg, rng))

    frames = np.concatenate(chunks) if chunks else np.zeros((0, params.n_mfcc), np.float32)
    per_split = {s: dict(sorted(Counter(str(e.label) for e in getattr(splits, s)).items())) for s in SPLITS}
    report = {
        "files_listed": len(data.examples),
        "files_used": len(usable) - len(splits.duplicates),
        "files_excluded": len(bad_files),
        "excluded_by_error": dict(sorted(Counter(b["error"] for b in bad_files).items())),
        "excluded_by_label": {
            str(k): v
            for k, v in sorted(Counter(labels[e.path] for e in data.examples if e.path not in wavs).items())
        },
        "bad_files": bad_files,
        "duplicates_dropped": [names[e.path] for e in splits.duplicates],
        # recordings of the frozen holdout listed in the dataset: never in any split
        "holdout_excluded": sorted(names[e.path] for e in decoded if hashes[e.path] in in_holdout),
        "noise_listed": len(data.noise_paths),
        "noise_used": len(noises),
        "bad_noise": bad_noise,
        "split_counts": per_split,
        "dataset_fingerprint": data.dataset_fingerprint,
    }
    return {
        "frames.npy": npy_bytes(frames.astype(np.float32)),
        "index.json": (json.dumps(index, sort_keys=True) + "\n").encode(),
        "report.json": (json.dumps(report, sort_keys=True, indent=2) + "\n").encode(),
    }


def build(ctx: RunContext, _: StageInputs) -> Built:
    files = compute(ctx.data, ctx.preset, ctx.progress)
    report = json.loads(files["report.json"])
    info = {k: report[k] for k in ("files_listed", "files_used", "files_excluded", "split_counts")}
    return Built(files, info)


STAGE = Stage("features", __name__, needs=(), params=params, compute=build)


@dataclass(frozen=True)
class FileFeatures:
    file: str
    sha256: str
    label: int
    variants: dict[str, np.ndarray]

    def variant(self, name: str) -> np.ndarray:
        return self.variants.get(name, self.variants["clean"])


def read_feature_set(frames_npy: bytes, index_json: bytes) -> dict[str, list[FileFeatures]]:
    """Per split, the files in stored order with their feature variants."""
    frames = npy_load(frames_npy)
    by_split: dict[str, dict[str, FileFeatures]] = {s: {} for s in SPLITS}
    for entry in json.loads(index_json):
        files = by_split[entry["split"]]
        item = files.setdefault(
            entry["sha256"], FileFeatures(entry["file"], entry["sha256"], entry["label"], {})
        )
        item.variants[entry["variant"]] = frames[entry["offset"] : entry["offset"] + entry["frames"]]
    return {s: list(files.values()) for s, files in by_split.items()}
