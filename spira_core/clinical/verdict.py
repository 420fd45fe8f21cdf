"""The clinical verdict: candidate against baseline on one frozen holdout, overall and per stratum (pure).

PASS when, overall and in every judged stratum, the lower end of the 95 % bootstrap interval of
(candidate - baseline) stays above -margin for sensitivity (at each model's own operating threshold),
specificity and AUC, and the candidate's overall point values reach the floors. A stratum with fewer
patients or controls than `min_per_class` is reported, not judged. Without a baseline (no champion yet)
only the floors judge.

The verdict is a plain JSON document (`SCHEMA`), written as `verdict.json` by the gate and the publish
stage, small enough to embed in a model card: holdout version and hash, thresholds, both models, per-stratum
intervals, the reasons for a FAIL and the overall ROC curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from spira_core.clinical import stats
from spira_core.clinical.holdout import STRATA, Holdout
from spira_core.clinical.thresholds import ClinicalThresholds

SCHEMA = "spira.clinical-verdict/v1"
PASS, FAIL = "PASS", "FAIL"


@dataclass(frozen=True)
class Scores:
    """One model's probabilities on a holdout, in the holdout's item order."""

    model_version: str
    threshold: float
    probabilities: tuple[float, ...]
    source: str  # where they came from: a URL, "in-process", "recorded (MLflow version 3)"

    def describe(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "threshold": self.threshold, "source": self.source}


def strata(holdout: Holdout) -> list[tuple[str, np.ndarray]]:
    """("overall", all) then ("noise=hospital", mask) … for every value of every condition present."""
    out = [("overall", np.ones(len(holdout.items), dtype=bool))]
    for name in STRATA:
        values = sorted({i.condition[name] for i in holdout.items if name in i.condition})
        for value in values:
            mask = np.array([i.condition.get(name) == value for i in holdout.items])
            out.append((f"{name}={value}", mask))
    return out


def _judge_stratum(
    name: str,
    labels: np.ndarray,
    cand: Scores,
    base: Scores | None,
    mask: np.ndarray,
    t: ClinicalThresholds,
    seed: int,
) -> dict[str, Any]:
    y = labels[mask]
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    judged = name == "overall" or (n_pos >= t.min_per_class and n_neg >= t.min_per_class)
    c = (np.asarray(cand.probabilities)[mask], cand.threshold)
    b = (np.asarray(base.probabilities)[mask], base.threshold) if base else None
    cmp = stats.compare(y, c, b, t.bootstrap_samples, seed, t.confidence)
    metrics: dict[str, Any] = {}
    failures: list[str] = []
    for m in stats.METRICS:
        row: dict[str, Any] = {"candidate": cmp.candidate[m].as_dict(), "margin": t.margins[m]}
        if cmp.baseline is not None and cmp.difference is not None:
            row["baseline"] = cmp.baseline[m].as_dict()
            row["difference"] = cmp.difference[m].as_dict()
            low = cmp.difference[m].low
            row["pass"] = None if not judged or math.isnan(low) else bool(low >= -t.margins[m] - 1e-12)
            if row["pass"] is False:
                failures.append(
                    f"{name}: {m} {cmp.candidate[m].value:.3f} vs baseline {cmp.baseline[m].value:.3f}: "
                    f"the difference's {t.confidence:.0%} interval reaches {low:+.3f}, below -{t.margins[m]:g}"
                )
        if name == "overall":
            value = cmp.candidate[m].value
            row["floor"] = t.floors[m]
            row["above_floor"] = bool(not math.isnan(value) and value >= t.floors[m])
            if not row["above_floor"]:
                failures.append(f"overall: candidate {m} {value:.3f} is below the floor {t.floors[m]:g}")
        metrics[m] = row
    reason = (
        "" if judged else f"reported, not judged: {n_pos} patients, {n_neg} controls (< {t.min_per_class})"
    )
    return {
        "stratum": name,
        "n": int(mask.sum()),
        "patients": n_pos,
        "controls": n_neg,
        "judged": judged,
        "reason": reason,
        "pass": not failures,
        "metrics": metrics,
        "failures": failures,
    }


def judge(
    holdout: Holdout, candidate: Scores, baseline: Scores | None, thresholds: ClinicalThresholds
) -> dict[str, Any]:
    """The verdict document. Candidate and baseline must be scores on this holdout, item for item."""
    for scores in (candidate, baseline):
        if scores is not None and len(scores.probabilities) != len(holdout.items):
            raise ValueError(
                f"{len(scores.probabilities)} probabilities for a holdout of {len(holdout.items)} recordings"
            )
    labels = np.asarray(holdout.labels, dtype=int)
    rows = [
        _judge_stratum(name, labels, candidate, baseline, mask, thresholds, thresholds.seed + 7919 * i)
        for i, (name, mask) in enumerate(strata(holdout))
    ]
    reasons = [f for row in rows for f in row["failures"]]
    roc = {"candidate": stats.roc_curve(labels, np.asarray(candidate.probabilities))}
    if baseline is not None:
        roc["baseline"] = stats.roc_curve(labels, np.asarray(baseline.probabilities))
    return {
        "schema": SCHEMA,
        "verdict": PASS if not reasons else FAIL,
        "reasons": reasons,
        "holdout": holdout.summary(),
        "thresholds": {
            "environment": thresholds.environment,
            "source": thresholds.source,
            "margins": thresholds.margins,
            "floors": thresholds.floors,
            "min_per_class": thresholds.min_per_class,
        },
        "bootstrap": {
            "samples": thresholds.bootstrap_samples,
            "seed": thresholds.seed,
            "confidence": thresholds.confidence,
            "paired": baseline is not None,
            "stratified_by_class": True,
        },
        "candidate": candidate.describe(),
        "baseline": baseline.describe() if baseline else None,
        "comparison": "non-inferiority" if baseline else "floors only (no baseline)",
        "strata": rows,
        "roc": {k: [[round(x, 6), round(y, 6)] for x, y in v] for k, v in roc.items()},
    }


def recorded_document(holdout: Holdout, scores: Scores) -> dict[str, Any]:
    """A model's result on a holdout as recorded with its version (what a later gate compares against)."""
    return {
        "schema": "spira.clinical-scores/v1",
        "holdout": holdout.summary(),
        **scores.describe(),
        "probabilities": list(scores.probabilities),
    }


def scores_from_recorded(holdout: Holdout, doc: dict[str, Any], source: str) -> Scores:
    """A recorded result as Scores on `holdout`; ValueError when it was recorded on another holdout."""
    recorded = doc.get("holdout", {}).get("sha256")
    if recorded != holdout.sha256:
        raise ValueError(
            f"the recorded result is on holdout {str(recorded)[:12]}, not {holdout.sha256[:12]}: "
            "models are only compared on the same holdout version"
        )
    probs = tuple(float(p) for p in doc["probabilities"])
    if len(probs) != len(holdout.items):
        raise ValueError("the recorded result does not cover the holdout item for item")
    return Scores(str(doc["model_version"]), float(doc["threshold"]), probs, source)
