"""Sensitivity, specificity, AUC and their paired, stratified bootstrap intervals."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from spira_core.clinical import stats

labelled_scores = st.integers(min_value=2, max_value=40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda y: 0 < sum(y) < len(y)),
        st.lists(st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.5, 0.7, 0.9, 1.0]), min_size=n, max_size=n),
    )
)


def test_sensitivity_and_specificity_count_each_class_at_the_models_own_threshold():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    probs = np.array([0.9, 0.6, 0.4, 0.2, 0.1, 0.3, 0.65, 0.5])
    assert stats.sensitivity(labels, probs, 0.5) == 0.5
    assert stats.specificity(labels, probs, 0.5) == 0.5  # 0.5 is at the threshold: predicted patient
    assert stats.sensitivity(labels, probs, 0.35) == 0.75


@settings(max_examples=60, deadline=None)
@given(labelled_scores)
def test_auc_agrees_with_scikit_learn_including_ties(data):
    labels, probs = map(np.array, data)
    assert math.isclose(stats.auc(labels, probs), roc_auc_score(labels, probs), abs_tol=1e-12)


@settings(max_examples=40, deadline=None)
@given(labelled_scores)
def test_the_roc_curve_runs_from_origin_to_corner_and_never_goes_down(data):
    labels, probs = map(np.array, data)
    curve = stats.roc_curve(labels, probs)
    assert curve[0] == (0.0, 0.0) and curve[-1] == (1.0, 1.0)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(curve))


@settings(max_examples=30, deadline=None)
@given(labelled_scores, st.integers(0, 2**31 - 1))
def test_every_interval_contains_its_point_value_and_lies_in_the_unit_range(data, seed):
    labels, probs = map(np.array, data)
    cmp = stats.compare(labels, (probs, 0.5), (probs[::-1].copy(), 0.4), samples=200, seed=seed)
    for intervals in (cmp.candidate, cmp.baseline):
        for iv in intervals.values():
            assert 0.0 <= iv.low <= iv.value <= iv.high <= 1.0
    for iv in cmp.difference.values():
        assert -1.0 <= iv.low <= iv.value <= iv.high <= 1.0


@settings(max_examples=30, deadline=None)
@given(labelled_scores)
def test_a_model_compared_with_itself_differs_by_exactly_zero(data):
    labels, probs = map(np.array, data)
    cmp = stats.compare(labels, (probs, 0.5), (probs, 0.5), samples=200, seed=1)
    for iv in cmp.difference.values():
        assert (iv.low, iv.value, iv.high) == (0.0, 0.0, 0.0)


def test_the_same_seed_gives_the_same_intervals_and_another_seed_different_ones():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 80)
    probs = np.clip(labels * 0.3 + rng.random(80) * 0.7, 0, 1)
    a = stats.compare(labels, (probs, 0.5), None, samples=300, seed=5)
    b = stats.compare(labels, (probs, 0.5), None, samples=300, seed=5)
    c = stats.compare(labels, (probs, 0.5), None, samples=300, seed=6)
    assert a == b
    assert a.candidate["auc"] != c.candidate["auc"]


def test_every_bootstrap_replicate_keeps_the_class_counts():
    labels = np.array([1] * 7 + [0] * 13)
    idx = stats.resample(labels, 50, np.random.default_rng(3))
    assert idx.shape == (50, 20)
    assert (labels[idx].sum(axis=1) == 7).all()


def test_intervals_narrow_as_the_holdout_grows():
    rng = np.random.default_rng(2)

    def width(n: int) -> float:
        labels = np.repeat([0, 1], n // 2)
        probs = np.clip(0.35 + 0.3 * labels + rng.normal(0, 0.2, n), 0, 1)
        iv = stats.compare(labels, (probs, 0.5), None, samples=500, seed=0).candidate["sensitivity"]
        return iv.high - iv.low

    assert width(800) < width(40) / 2
