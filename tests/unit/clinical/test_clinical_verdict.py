"""The clinical verdict: non-inferiority by the reviewed margins, strata, floors and the thresholds files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spira_core.clinical import holdout as H
from spira_core.clinical import thresholds as T
from spira_core.clinical.verdict import FAIL, PASS, Scores, judge, recorded_document, scores_from_recorded


def make_holdout(n: int = 120, seed: int = 0) -> H.Holdout:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        condition = {
            # conditions independent of the class (the label alternates)
            "sample_rate": "48000" if (i // 2) % 3 else "44100",
            "channels": "1" if (i // 2) % 4 else "2",
            "noise": H.CLEAN if (i // 2) % 2 else H.HOSPITAL_NOISE,
        }
        items.append(H.HoldoutItem(f"clips/{i}.wav", f"{rng.integers(2**63):064x}", i % 2, condition))
    return H.make(items)


def scores(holdout: H.Holdout, skill: float, seed: int, version: str = "2") -> Scores:
    """Probabilities that separate the classes by `skill` (0: chance)."""
    rng = np.random.default_rng(seed)
    labels = np.array(holdout.labels)
    probs = np.clip(0.5 + skill * (labels - 0.5) + rng.normal(0, 0.15, labels.size), 0, 1)
    return Scores(version, 0.5, tuple(float(p) for p in probs), "test")


THRESHOLDS = T.load("local")


def test_a_candidate_equal_to_its_baseline_passes():
    h = make_holdout()
    good = scores(h, 0.6, 1)
    verdict = judge(h, good, good, THRESHOLDS)
    assert verdict["verdict"] == PASS, verdict["reasons"]


def test_a_clearly_worse_candidate_fails_and_the_reasons_name_the_metric():
    h = make_holdout()
    verdict = judge(h, scores(h, 0.05, 2), scores(h, 0.6, 1), THRESHOLDS)
    assert verdict["verdict"] == FAIL
    assert any(r.startswith("overall: auc") for r in verdict["reasons"])


def test_a_better_candidate_passes():
    h = make_holdout()
    assert judge(h, scores(h, 0.7, 3), scores(h, 0.4, 4), THRESHOLDS)["verdict"] == PASS


def test_a_worse_model_in_one_condition_only_fails_that_stratum():
    h = make_holdout(240)
    base = scores(h, 0.6, 1)
    probs = np.array(base.probabilities)
    noisy = np.array([i.condition["noise"] == H.HOSPITAL_NOISE for i in h.items])
    probs[noisy] = np.random.default_rng(9).random(noisy.sum())  # chance under hospital noise
    verdict = judge(h, Scores("3", 0.5, tuple(probs), "test"), base, THRESHOLDS)
    failed = {row["stratum"] for row in verdict["strata"] if not row["pass"]}
    assert "noise=hospital" in failed and "noise=clean" not in failed


def test_a_stratum_below_the_minimum_count_is_reported_not_judged():
    h = make_holdout(40)
    strict = T.parse({**_document("local"), "strata": {"min_per_class": 8}}, "test")
    verdict = judge(h, scores(h, 0.6, 1), scores(h, 0.6, 2), strict)
    rows = {row["stratum"]: row for row in verdict["strata"]}
    small = rows["channels=2"]  # 10 recordings: 5 patients, 5 controls
    assert not small["judged"] and "reported, not judged" in small["reason"]
    assert all(m.get("pass") is None for m in small["metrics"].values())
    assert rows["overall"]["judged"]


def test_without_a_baseline_only_the_floors_judge():
    h = make_holdout()
    floors = T.parse({**_document("local"), "floors": {"sensitivity": 0.5, "specificity": 0.5, "auc": 0.6}})
    assert judge(h, scores(h, 0.6, 1), None, floors)["verdict"] == PASS
    chance = judge(h, scores(h, 0.0, 1), None, floors)
    assert chance["verdict"] == FAIL and chance["comparison"] == "floors only (no baseline)"
    assert any("below the floor" in r for r in chance["reasons"])


def test_the_verdict_is_json_with_the_holdout_version_intervals_and_roc_curves():
    h = make_holdout()
    verdict = json.loads(json.dumps(judge(h, scores(h, 0.6, 1), scores(h, 0.5, 2), THRESHOLDS)))
    assert verdict["holdout"]["version"] == h.version and verdict["schema"] == "spira.clinical-verdict/v1"
    auc = verdict["strata"][0]["metrics"]["auc"]
    assert set(auc) >= {"candidate", "baseline", "difference", "margin", "pass", "floor"}
    assert auc["candidate"]["low"] <= auc["candidate"]["value"] <= auc["candidate"]["high"]
    assert verdict["roc"]["candidate"][0] == [0.0, 0.0]


def test_a_recorded_result_is_only_used_on_the_same_holdout_version():
    h, other = make_holdout(seed=0), make_holdout(seed=1)
    doc = recorded_document(h, scores(h, 0.6, 1))
    assert scores_from_recorded(h, doc, "recorded").probabilities == scores(h, 0.6, 1).probabilities
    with pytest.raises(ValueError, match="only compared on the same holdout version"):
        scores_from_recorded(other, doc, "recorded")


def test_the_holdout_hash_ignores_row_order_and_file_names_but_not_labels_or_conditions():
    h = make_holdout(20)
    renamed = [H.HoldoutItem("x/" + i.file_path, i.sha256, i.label, i.condition) for i in reversed(h.items)]
    assert H.make(renamed).sha256 == h.sha256
    flipped = [H.HoldoutItem(i.file_path, i.sha256, 1 - i.label, i.condition) for i in h.items]
    assert H.make(flipped).sha256 != h.sha256
    moved = [H.HoldoutItem(i.file_path, i.sha256, i.label, {**i.condition, "noise": "x"}) for i in h.items]
    assert H.make(moved).sha256 != h.sha256


def test_the_holdout_csv_round_trips_and_a_plain_dataset_csv_is_refused():
    h = make_holdout(10)
    assert H.parse_csv(H.to_csv(h)) == h
    with pytest.raises(H.HoldoutError, match="holdout freeze"):
        H.parse_csv("file_path,class\na.wav,0\n", "dataset.csv")


def _document(env: str) -> dict:
    import yaml

    return yaml.safe_load(T.resolve(env).read_text())


@pytest.mark.parametrize("env", T.ENVIRONMENTS)
def test_every_environment_has_a_valid_clinical_thresholds_file(env):
    assert T.load(env).environment == env


def test_production_is_at_least_as_strict_as_staging_and_staging_as_local():
    local, staging, production = (T.load(e) for e in ("local", "staging", "production"))
    for metric in local.margins:
        assert production.margins[metric] <= staging.margins[metric] <= local.margins[metric]
        assert production.floors[metric] >= staging.floors[metric] >= local.floors[metric]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"margins": {"sensitivity": 0.05, "specificity": 0.05}}, "margins.auc"),
        ({"margins": {"sensitivity": 0.05, "specificity": 0.05, "auc": 0.9}}, "margins.auc"),
        ({"floor": {}}, "floor"),
        ({"strata": {"min_per_class": 0}}, "strata.min_per_class"),
        ({"bootstrap": {"samples": 10, "seed": 1}}, "bootstrap.samples"),
    ],
)
def test_a_malformed_thresholds_file_names_the_field(change, field):
    with pytest.raises(T.ClinicalThresholdsError) as err:
        T.parse({**_document("staging"), **change}, "bad.yaml")
    assert err.value.field == field
