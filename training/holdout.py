"""The frozen holdout on the training side: freeze a dataset CSV into one, read it back, score a bundle on it.

`freeze` turns a dataset CSV (SPIRA's layout; an optional `site` column is kept) into a holdout folder:
every recording as it is (noise condition `clean`) and, with a noise CSV, a copy with hospital noise added
at the recording's own rate and channels (`hospital`; seeded per recording, so a re-freeze is
byte-identical), each named by its content hash, and `dataset.csv` with the condition columns
(spira_core.clinical.holdout). `upload` writes it to the features bucket under `holdout/<version>/` and
moves `holdout/CURRENT` to it. The labels are read by nothing but the gate: training's features stage
excludes every recording whose content is in the holdout (`DataInputs.holdout`), before the split.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spira_core import audio, augment
from spira_core.clinical.holdout import CLEAN, HOSPITAL_NOISE, Holdout, HoldoutItem, make, to_csv
from spira_core.clinical.source import CURRENT, MANIFEST, OpenHoldout, from_reader
from spira_core.clinical.verdict import Scores
from training.data import load_dataset_csv, load_noise_csv
from training.ports import ArtifactMissing, ArtifactStore

NOISE_SEED = 19


@dataclass(frozen=True)
class Frozen:
    holdout: Holdout
    files: dict[str, bytes]  # path relative to the holdout folder -> bytes (the manifest included)


def _sites(csv_path: Path) -> dict[Path, str]:
    base = csv_path.resolve().parent
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    return {
        (base / row["file_path"].strip()).resolve(): row["site"].strip()
        for row in rows
        if (row.get("site") or "").strip() and (row.get("file_path") or "").strip()
    }


def _wav(data: np.ndarray, rate: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(data, -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def freeze(
    dataset_csv: Path, noise_csv: Path | None = None, noise: augment.NoiseConfig | None = None
) -> Frozen:
    """The holdout of every recording the CSV lists (see the module's docstring)."""
    examples = load_dataset_csv(dataset_csv)
    sites = _sites(Path(dataset_csv))
    noise_paths = load_noise_csv(noise_csv) if noise_csv else []
    cfg = noise or augment.NoiseConfig()
    noise_cache: dict[int, list[np.ndarray]] = {}
    items: list[HoldoutItem] = []
    files: dict[str, bytes] = {}

    def add(data: bytes, suffix: str, label: int, condition: dict[str, str]) -> None:
        digest = hashlib.sha256(data).hexdigest()
        name = f"clips/{digest}{suffix}"
        files[name] = data
        items.append(HoldoutItem(name, digest, label, condition))

    for example in examples:
        raw = example.path.read_bytes()
        samples, rate = audio.decode(raw)
        site = sites.get(example.path.resolve())
        condition = {"sample_rate": str(rate), "channels": str(samples.shape[1])}
        if site:
            condition["site"] = site
        add(raw, example.path.suffix.lower() or ".wav", example.label, {**condition, "noise": CLEAN})
        if noise_paths:
            clips = noise_cache.setdefault(rate, [audio.load_audio(p, rate) for p in noise_paths])
            rng = augment.file_rng(NOISE_SEED, f"holdout:{hashlib.sha256(raw).hexdigest()}")
            added = augment.add_noise(np.zeros(samples.shape[0], np.float32), example.label, clips, cfg, rng)
            add(
                _wav(samples + added[:, None], rate),
                ".wav",
                example.label,
                {**condition, "noise": HOSPITAL_NOISE},
            )
    holdout = make(items)
    files[MANIFEST] = to_csv(holdout).encode()
    return Frozen(holdout, files)


def write_folder(frozen: Frozen, out: Path) -> Path:
    for rel, data in frozen.files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    return out / MANIFEST


def upload(frozen: Frozen, store: ArtifactStore) -> str:
    """Write the holdout under `<version>/` of `store` (manifest last) and make it the current one."""
    version = frozen.holdout.version
    for rel, data in sorted(frozen.files.items(), key=lambda kv: kv[0] == MANIFEST):
        store.put(f"{version}/{rel}", data)
    store.put(CURRENT, (version + "\n").encode())
    return version


def from_store(store: ArtifactStore, version: str | None = None) -> OpenHoldout | None:
    """The holdout `version` (default: the current one) of a store rooted at the holdout folder; None when
    no holdout was ever frozen."""
    if version is None:
        try:
            version = store.get(CURRENT).decode().strip()
        except ArtifactMissing:
            return None
    return from_reader(lambda rel: store.get(f"{version}/{rel}"), f"holdout/{version}/")


def score_bundle(opened: OpenHoldout, bundle, model_version: str) -> Scores:
    """A model bundle's probability for every holdout recording, in process, as serving computes it:
    decode, mono, resample, MFCC, every window, mean of the window probabilities."""
    from spira_core import features as F
    from spira_core import windows as W
    from spira_core.model import predict_windows

    params = bundle.params
    windows = [
        W.file_windows(F.mfcc(audio.load_audio(opened.audio(item), params.sample_rate), params), params)
        for item in opened.holdout.items
    ]
    probs = W.aggregate_by_file(
        predict_windows(bundle.model, np.concatenate(windows)), [len(w) for w in windows]
    )
    return Scores(model_version, float(bundle.threshold), tuple(float(p) for p in probs), "in-process")
