"""Hospital-noise augmentation as SPIRA does it.

For each file, N noise clips are added (N differs for controls and patients): each clip is drawn at random
from the noise set, a random segment as long as the speech is cut from it (looped if the clip is shorter),
and the segment is rescaled so its peak amplitude is a random value in [min_amp, max_amp]. SPIRA's exp3.5
bounds (0.0335, 0.1923) were measured on noise segments of real patient recordings.

At test time the noise must be the same on every run and for every model, so its generator is seeded per
file (`file_rng(seed, key)`), as SPIRA reseeded its test loader per file index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

CONTROL, PATIENT = 0, 1


@dataclass(frozen=True)
class NoiseConfig:
    num_noise_control: int = 3
    num_noise_patient: int = 3
    min_amp: float = 0.033474047
    max_amp: float = 0.19233719

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_amp <= self.max_amp:
            raise ValueError("noise amplitudes need 0 <= min_amp <= max_amp")
        if self.num_noise_control < 0 or self.num_noise_patient < 0:
            raise ValueError("noise counts cannot be negative")

    def count_for(self, label: int) -> int:
        return self.num_noise_patient if label == PATIENT else self.num_noise_control

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def file_rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on (seed, key): the same noise for a file on every run."""
    digest = hashlib.sha256(key.encode()).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])


def noise_segment(noise: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random `length`-sample segment of `noise`, looping the clip when it is shorter."""
    noise = np.asarray(noise, dtype=np.float32)
    if noise.size == 0:
        raise ValueError("empty noise clip")
    if noise.size <= length:
        reps = length // noise.size + 2
        noise = np.tile(noise, reps)
    start = int(rng.integers(0, noise.size - length + 1))
    return noise[start : start + length]


def scaled_noise(
    noise: np.ndarray, length: int, cfg: NoiseConfig, rng: np.random.Generator
) -> np.ndarray | None:
    """One noise contribution with peak |amplitude| drawn from [min_amp, max_amp]; None for silent noise."""
    segment = noise_segment(noise, length, rng)
    amp = float(rng.uniform(cfg.min_amp, cfg.max_amp))
    peak = float(np.max(np.abs(segment)))
    if peak <= 0.0:
        return None
    return (segment * (amp / peak)).astype(np.float32)


def add_noise(
    wav: np.ndarray, label: int, noises: Sequence[np.ndarray], cfg: NoiseConfig, rng: np.random.Generator
) -> np.ndarray:
    """`wav` plus cfg.count_for(label) hospital-noise clips (all at the same sample rate as wav)."""
    out = np.array(wav, dtype=np.float32, copy=True)
    if not noises:
        return out
    for _ in range(cfg.count_for(label)):
        clip = noises[int(rng.integers(0, len(noises)))]
        contribution = scaled_noise(clip, out.size, cfg, rng)
        if contribution is not None:
            out += contribution
    return out
