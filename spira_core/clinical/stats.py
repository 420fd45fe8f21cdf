"""Sensitivity, specificity and ROC AUC of per-recording probabilities, with seeded bootstrap intervals.

Pure numpy. Labels: 1 patient, 0 control. A model predicts "patient" when its probability is at or above its
own operating threshold (the one stored with it). The bootstrap resamples patients among patients and
controls among controls (stratified), so every replicate has both classes and the class counts of the data;
candidate and baseline are resampled with the same indices (paired), which is what makes the interval of
their difference narrow when they agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

METRICS = ("sensitivity", "specificity", "auc")
_CHUNK = 64  # bootstrap replicates per vectorised AUC block (bounds memory at _CHUNK * n_pos * n_neg)


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float | None]:
        return {k: (None if math.isnan(v) else round(v, 6)) for k, v in vars(self).items()}


def sensitivity(labels: np.ndarray, probs: np.ndarray, threshold: float) -> float:
    pos = np.asarray(labels) == 1
    return float(np.mean(np.asarray(probs)[pos] >= threshold)) if pos.any() else math.nan


def specificity(labels: np.ndarray, probs: np.ndarray, threshold: float) -> float:
    neg = np.asarray(labels) == 0
    return float(np.mean(np.asarray(probs)[neg] < threshold)) if neg.any() else math.nan


def auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """P(a random patient scores above a random control), ties counting half; NaN with one class."""
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=float)
    pos, neg = probs[labels == 1], probs[labels == 0]
    if pos.size == 0 or neg.size == 0:
        return math.nan
    return float(_auc_rows(pos[None, :], neg[None, :])[0])


def _auc_rows(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUC of each row: pos [B, n1], neg [B, n0]."""
    out = np.empty(pos.shape[0])
    for start in range(0, pos.shape[0], _CHUNK):
        p, n = pos[start : start + _CHUNK, :, None], neg[start : start + _CHUNK, None, :]
        wins = (p > n).sum(axis=(1, 2)) + 0.5 * (p == n).sum(axis=(1, 2))
        out[start : start + _CHUNK] = wins / (pos.shape[1] * neg.shape[1])
    return out


def point(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, float]:
    return {
        "sensitivity": sensitivity(labels, probs, threshold),
        "specificity": specificity(labels, probs, threshold),
        "auc": auc(labels, probs),
    }


def roc_curve(labels: np.ndarray, probs: np.ndarray) -> list[tuple[float, float]]:
    """(false-positive rate, true-positive rate) at every distinct threshold, from (0, 0) to (1, 1)."""
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=float)
    n_pos, n_neg = int((labels == 1).sum()), int((labels == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return []
    points = [(0.0, 0.0)]
    for t in np.unique(probs)[::-1]:
        above = probs >= t
        points.append(
            (float((above & (labels == 0)).sum() / n_neg), float((above & (labels == 1)).sum() / n_pos))
        )
    return points


def resample(labels: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """[samples, n] indices: patients drawn among patients, controls among controls, with replacement."""
    labels = np.asarray(labels)
    columns = []
    for cls in (1, 0):
        members = np.flatnonzero(labels == cls)
        if members.size:
            columns.append(members[rng.integers(0, members.size, size=(samples, members.size))])
    return np.concatenate(columns, axis=1) if columns else np.zeros((samples, 0), dtype=int)


def _replicates(
    labels: np.ndarray, probs: np.ndarray, threshold: float, idx: np.ndarray
) -> dict[str, np.ndarray]:
    y, p = labels[idx], probs[idx]
    pos, neg = y == 1, y == 0
    n_pos, n_neg = pos[0].sum() if len(y) else 0, neg[0].sum() if len(y) else 0
    nan = np.full(idx.shape[0], math.nan)
    sens = ((p >= threshold) & pos).sum(axis=1) / n_pos if n_pos else nan
    spec = ((p < threshold) & neg).sum(axis=1) / n_neg if n_neg else nan
    if n_pos and n_neg:
        # stratified resampling keeps the class columns in place: patients first, then controls
        order = np.argsort(~pos[0], kind="stable")
        p_sorted = p[:, order]
        area = _auc_rows(p_sorted[:, :n_pos], p_sorted[:, n_pos:])
    else:
        area = nan
    return {"sensitivity": sens, "specificity": spec, "auc": area}


def _interval(value: float, draws: np.ndarray, confidence: float) -> Interval:
    draws = draws[~np.isnan(draws)]
    if math.isnan(value) or draws.size == 0:
        return Interval(value, math.nan, math.nan)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(value, float(min(low, value)), float(max(high, value)))


@dataclass(frozen=True)
class Comparison:
    """Per metric: the candidate's, the baseline's (None without one) and their difference's intervals."""

    candidate: dict[str, Interval]
    baseline: dict[str, Interval] | None
    difference: dict[str, Interval] | None


def compare(
    labels: np.ndarray,
    candidate: tuple[np.ndarray, float],
    baseline: tuple[np.ndarray, float] | None,
    samples: int,
    seed: int,
    confidence: float = 0.95,
) -> Comparison:
    """Point values and paired, stratified bootstrap intervals. `candidate`/`baseline`: (probabilities
    aligned with `labels`, operating threshold). The same seed and inputs give the same intervals."""
    labels = np.asarray(labels, dtype=int)
    idx = resample(labels, samples, np.random.default_rng(seed))
    c_probs, c_thr = np.asarray(candidate[0], dtype=float), float(candidate[1])
    c_point, c_draws = point(labels, c_probs, c_thr), _replicates(labels, c_probs, c_thr, idx)
    cand = {m: _interval(c_point[m], c_draws[m], confidence) for m in METRICS}
    if baseline is None:
        return Comparison(cand, None, None)
    b_probs, b_thr = np.asarray(baseline[0], dtype=float), float(baseline[1])
    b_point, b_draws = point(labels, b_probs, b_thr), _replicates(labels, b_probs, b_thr, idx)
    base = {m: _interval(b_point[m], b_draws[m], confidence) for m in METRICS}
    diff = {m: _interval(c_point[m] - b_point[m], c_draws[m] - b_draws[m], confidence) for m in METRICS}
    return Comparison(cand, base, diff)
