"""Temporal control: how a file's feature frames [T, F] become fixed-length model inputs [N, W, F].

Three modes, as in SPIRA:
- "window": overlapping windows of `window_s` moved by `step_s`, cut from the file's feature frames; the
  file's probability is the mean of its windows' probabilities. A file shorter than one window is
  zero-padded to one window (SPIRA refused such files).
- "padding": one input per file, zero-padded at the end (or cut) to `max_len_s`.
- "random": while training, one randomly placed window per file and epoch; at inference the same
  overlapping windows as "window" mode, since the model only knows window-length inputs.

    x = file_windows(feats, params)             # [N, W, F]
    p = aggregate(model_probs_for(x))           # mean over windows
"""

from __future__ import annotations

import numpy as np

from spira_core.params import FeatureParams


def _pad_to(feats: np.ndarray, length: int) -> np.ndarray:
    if feats.shape[0] >= length:
        return feats[:length]
    pad = np.zeros((length - feats.shape[0], feats.shape[1]), dtype=feats.dtype)
    return np.concatenate([feats, pad], axis=0)


def window_starts(n_frames: int, params: FeatureParams) -> list[int]:
    """First frame of each overlapping window (always at least one)."""
    width, step = params.input_frames, params.step_frames
    if n_frames <= width:
        return [0]
    return list(range(0, n_frames - width + 1, step))


def file_windows(feats: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Every inference input of one file: [N, W, F] (N = 1 in padding mode)."""
    feats = np.asarray(feats, dtype=np.float32)
    if feats.ndim != 2:
        raise ValueError(f"expected features [frames, coefficients], got shape {feats.shape}")
    width = params.input_frames
    if params.temporal_mode == "padding":
        return _pad_to(feats, width)[None]
    padded = _pad_to(feats, max(width, feats.shape[0]))
    return np.stack([padded[s : s + width] for s in window_starts(feats.shape[0], params)])


def random_window(feats: np.ndarray, params: FeatureParams, rng: np.random.Generator) -> np.ndarray:
    """One window at a uniformly drawn position: [1, W, F]."""
    width = params.input_frames
    if feats.shape[0] <= width:
        return _pad_to(np.asarray(feats, dtype=np.float32), width)[None]
    start = int(rng.integers(0, feats.shape[0] - width + 1))
    return np.asarray(feats[start : start + width], dtype=np.float32)[None]


def training_windows(feats: np.ndarray, params: FeatureParams, rng: np.random.Generator) -> np.ndarray:
    """The inputs one file contributes to one training epoch."""
    if params.temporal_mode == "random":
        return random_window(feats, params, rng)
    return file_windows(feats, params)


def aggregate(window_probs: np.ndarray) -> float:
    """A file's probability: the mean of its windows' probabilities."""
    probs = np.asarray(window_probs, dtype=np.float64).reshape(-1)
    if probs.size == 0:
        raise ValueError("no window probabilities to aggregate")
    return float(probs.mean())


def aggregate_by_file(window_probs: np.ndarray, counts: list[int] | np.ndarray) -> np.ndarray:
    """Split a flat vector of window probabilities by per-file window counts and average each part."""
    probs = np.asarray(window_probs, dtype=np.float64).reshape(-1)
    counts = np.asarray(counts, dtype=np.int64)
    if counts.sum() != probs.size:
        raise ValueError(f"{probs.size} window probabilities but counts add up to {int(counts.sum())}")
    bounds = np.cumsum(counts)[:-1]
    return np.array([aggregate(part) for part in np.split(probs, bounds)])
