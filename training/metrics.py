"""Binary classification metrics on per-file probabilities, and the confusion-matrix image."""

from __future__ import annotations

import io
import math

import numpy as np


def confusion(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """[[TN, FP], [FN, TP]] with rows = true class (0 control, 1 patient)."""
    labels = np.asarray(labels, dtype=int)
    predicted = np.asarray(predicted, dtype=int)
    matrix = np.zeros((2, 2), dtype=int)
    for t, p in zip(labels, predicted, strict=True):
        matrix[t, p] += 1
    return matrix


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Probability that a random patient scores above a random control (ties count half); NaN if one class."""
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if pos.size == 0 or neg.size == 0:
        return math.nan
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def binary_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    labels = np.asarray(labels, dtype=int)
    predicted = (np.asarray(probs, dtype=float) >= threshold).astype(int)
    (tn, fp), (fn, tp) = confusion(labels, predicted)
    precision = _ratio(tp, tp + fp)
    sensitivity = _ratio(tp, tp + fn)
    return {
        "accuracy": _ratio(tp + tn, labels.size),
        "f1": _ratio(2 * precision * sensitivity, precision + sensitivity),
        "sensitivity": sensitivity,
        "specificity": _ratio(tn, tn + fp),
        "precision": precision,
        "roc_auc": roc_auc(labels, probs),
        "n": float(labels.size),
    }


def confusion_png(matrix: np.ndarray, title: str) -> bytes:
    """The confusion matrix as a PNG (Agg backend; no timestamps, so the same matrix gives the same bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3.6), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(int(matrix.max()), 1))
    names = ["control", "patient"]
    ax.set_xticks([0, 1], labels=names)
    ax.set_yticks([0, 1], labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for (i, j), value in np.ndenumerate(matrix):
        colour = "white" if value > matrix.max() / 2 else "black"
        ax.text(j, i, str(value), ha="center", va="center", color=colour, fontsize=12)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
