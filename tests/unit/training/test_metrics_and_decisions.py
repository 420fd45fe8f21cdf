from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training import metrics as M
from training.ports import ModelVersionInfo
from training.stages.publish import decide
from training.stages.train import noam_factor


def test_metrics_follow_their_definitions_on_a_known_confusion_matrix():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    probs = np.array([0.9, 0.8, 0.6, 0.2, 0.1, 0.3, 0.55, 0.4, 0.05, 0.7])
    m = M.binary_metrics(labels, probs, threshold=0.5)
    # TP 3, FN 1, FP 2, TN 4
    assert M.confusion(labels, probs >= 0.5).tolist() == [[4, 2], [1, 3]]
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["sensitivity"] == pytest.approx(0.75) and m["specificity"] == pytest.approx(4 / 6)
    assert m["f1"] == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(labels, probs))


def test_roc_auc_counts_ties_as_half_and_is_undefined_for_one_class():
    assert M.roc_auc(np.array([1, 0]), np.array([0.5, 0.5])) == 0.5
    assert math.isnan(M.roc_auc(np.array([1, 1]), np.array([0.2, 0.9])))


def test_the_confusion_image_is_a_png_and_the_same_matrix_gives_the_same_bytes():
    matrix = np.array([[5, 1], [0, 6]])
    a, b = M.confusion_png(matrix, "t"), M.confusion_png(matrix, "t")
    assert a.startswith(b"\x89PNG") and a == b
    assert M.confusion_png(np.array([[4, 2], [0, 6]]), "t") != a


def test_noam_warms_up_linearly_to_the_base_rate_then_decays_as_inverse_square_root():
    f = noam_factor(100)
    assert f(0) == f(1) == pytest.approx(0.01)
    assert f(50) == pytest.approx(0.5)
    assert f(100) == pytest.approx(1.0)
    assert f(400) == pytest.approx(0.5)


def _champion() -> ModelVersionInfo:
    return ModelVersionInfo("4", "r", {})


def _verdict(outcome: str) -> dict:
    return {
        "verdict": outcome,
        "holdout": {"version": "h0123456789ab"},
        "reasons": ["overall: auc 0.6 vs 0.9"],
    }


@pytest.mark.parametrize(
    ("verdict", "champion", "expected", "reason"),
    [
        (None, None, True, "no champion yet"),
        (None, _champion(), False, "no frozen holdout to compare with champion v4"),
        (
            _verdict("PASS"),
            _champion(),
            True,
            "clinical gate PASS on holdout h0123456789ab against champion v4",
        ),
        (_verdict("FAIL"), _champion(), False, "clinical gate FAIL on holdout h0123456789ab"),
        (_verdict("PASS"), None, True, "against the floors (no champion yet)"),
        (_verdict("FAIL"), None, False, "overall: auc 0.6 vs 0.9"),
    ],
)
def test_publish_makes_a_candidate_only_when_the_clinical_gate_passes_on_the_holdout(
    verdict, champion, expected, reason
):
    ok, why = decide(verdict, champion)
    assert ok is expected and reason in why
