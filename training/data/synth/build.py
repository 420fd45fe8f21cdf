"""Write a synthetic SPIRA-like dataset: WAV files (PCM16) plus ``dataset.csv`` and ``noise.csv``.

Every clip has its own random stream derived from (seed, clip index), so a clip does not depend on how many
others were drawn before it, and the same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from training.data.synth.hospital import NOISE_KINDS, render_noise
from training.data.synth.params import SynthParams
from training.data.synth.voice import ClipSpec, draw_clip_spec, render_clip

CLIPS_DIR = "clips"
NOISE_DIR = "noise"
DATASET_CSV = "dataset.csv"
NOISE_CSV = "noise.csv"
# stream tags keep the label draw, clips and noise clips on unrelated random streams for one seed
_LABELS, _CLIP, _NOISE = 0, 1, 2


@dataclass(frozen=True)
class NoiseSpec:
    index: int
    kind: str
    duration_s: float
    sample_rate: int


@dataclass(frozen=True)
class SynthResult:
    out_dir: Path
    dataset_csv: Path
    noise_csv: Path
    clips: tuple[ClipSpec, ...]
    noises: tuple[NoiseSpec, ...]


def _rng(seed: int, *tags: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *tags]))


def draw_labels(params: SynthParams) -> list[int]:
    """Exactly round(n * patient_fraction) patients, in seeded random order."""
    n_patients = min(max(round(params.n * params.patient_fraction), 1), params.n - 1)
    labels = np.array([0] * (params.n - n_patients) + [1] * n_patients)
    return [int(x) for x in _rng(params.seed, _LABELS).permutation(labels)]


def clip_name(index: int) -> str:
    # the name carries no label, so nothing downstream can learn the class from a path
    return f"{CLIPS_DIR}/synth_{index:04d}.wav"


def noise_name(spec: NoiseSpec) -> str:
    return f"{NOISE_DIR}/noise_{spec.index:02d}_{spec.kind}.wav"


def _write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, sample_rate, subtype="PCM_16", format="WAV")


def synthesize(
    params: SynthParams,
    out_dir: Path,
    on_clip: Callable[[str], None] | None = None,
) -> SynthResult:
    """Render every clip and noise clip of ``params`` under ``out_dir`` and write both CSVs.

    ``on_clip`` is called after each written file (for a progress bar).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # a rerun with a smaller n must not leave clips from the previous run beside the new CSV
    for stale in [*out_dir.glob(f"{CLIPS_DIR}/synth_*.wav"), *out_dir.glob(f"{NOISE_DIR}/noise_*.wav")]:
        stale.unlink()
    clips: list[ClipSpec] = []
    for index, label in enumerate(draw_labels(params)):
        rng = _rng(params.seed, _CLIP, index)
        spec = draw_clip_spec(params, index, label, rng)
        _write_wav(out_dir / clip_name(index), render_clip(spec, rng, params.syllable_s), spec.sample_rate)
        clips.append(spec)
        if on_clip:
            on_clip(clip_name(index))

    noises: list[NoiseSpec] = []
    for index in range(params.n_noise):
        rng = _rng(params.seed, _NOISE, index)
        kind = NOISE_KINDS[index % len(NOISE_KINDS)]
        duration = round(float(rng.uniform(*params.noise_durations_s)), 3)
        spec = NoiseSpec(index, kind, duration, params.noise_sample_rate)
        level = float(rng.uniform(*params.noise_dbfs))
        samples = render_noise(kind, duration, spec.sample_rate, level, rng)
        _write_wav(out_dir / noise_name(spec), samples, spec.sample_rate)
        noises.append(spec)
        if on_clip:
            on_clip(noise_name(spec))

    dataset_csv = out_dir / DATASET_CSV
    with open(dataset_csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        # SPIRA's two columns first; the rest describe the draw (ignored by the loader, useful for analysis)
        writer.writerow(
            ["file_path", "class", "task", "sex", "sample_rate", "channels", "duration_s", "severity"]
        )
        for c in clips:
            writer.writerow(
                [
                    clip_name(c.index),
                    c.label,
                    c.task,
                    c.sex,
                    c.sample_rate,
                    c.channels,
                    f"{c.duration_s:.3f}",
                    f"{c.severity:.4f}",
                ]
            )
    noise_csv = out_dir / NOISE_CSV
    with open(noise_csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["file_path", "kind", "duration_s"])
        for s in noises:
            writer.writerow([noise_name(s), s.kind, f"{s.duration_s:.3f}"])
    return SynthResult(out_dir, dataset_csv, noise_csv, tuple(clips), tuple(noises))
