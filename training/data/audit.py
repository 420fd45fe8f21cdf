"""Probe every recording of a dataset: decodable, non-empty, not silent; summarise rates and durations.

A bad recording is reported with a reason and left out, never a crash halfway through a dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from training.data.dataset import Example


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    label: int
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class BadFile:
    path: Path
    label: int
    reason: str


@dataclass(frozen=True)
class Audit:
    good: tuple[AudioInfo, ...]
    bad: tuple[BadFile, ...]


def probe_audio(example: Example) -> AudioInfo | BadFile:
    """Decode the whole file (a valid header can sit on a truncated or garbled body)."""
    try:
        samples, sample_rate = sf.read(example.path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        return BadFile(example.path, example.label, f"unreadable: {exc}")
    if samples.shape[0] == 0:
        return BadFile(example.path, example.label, "empty: no samples")
    if not np.isfinite(samples).all():
        return BadFile(example.path, example.label, "corrupt: non-finite samples")
    if not np.any(samples):
        return BadFile(example.path, example.label, "silent: every sample is zero")
    return AudioInfo(
        example.path, example.label, int(sample_rate), int(samples.shape[1]), int(samples.shape[0])
    )


def audit_examples(
    examples: Iterable[Example],
    probe: Callable[[Example], AudioInfo | BadFile] = probe_audio,
    on_file: Callable[[Example], None] | None = None,
) -> Audit:
    good: list[AudioInfo] = []
    bad: list[BadFile] = []
    for example in examples:
        result = probe(example)
        (bad if isinstance(result, BadFile) else good).append(result)  # type: ignore[arg-type]
        if on_file:
            on_file(example)
    return Audit(tuple(good), tuple(bad))
