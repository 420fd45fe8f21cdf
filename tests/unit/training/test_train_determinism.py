"""Training is a function of (features, preset): same seed → same weights; another seed → other weights."""

from __future__ import annotations

import numpy as np
import pytest

from spira_core import windows as W
from tests.fakes.training import FixedSeed
from tests.unit.training.conftest import TINY, write_dataset
from training.stages.features import DataInputs, FileFeatures, compute, read_feature_set
from training.stages.train import fit, input_statistics


@pytest.fixture(scope="module")
def feature_set(tmp_path_factory):
    data = write_dataset(tmp_path_factory.mktemp("d"), n_per_class=4)
    files = compute(DataInputs.load(data.dataset_csv, data.noise_csv), TINY, lambda it, **_: it)
    return read_feature_set(files["frames.npy"], files["index.json"])


def _digest(feature_set, seed: int, preset=TINY) -> str:
    _, _, summary = fit(feature_set, preset.features, preset, FixedSeed(seed), lambda it, **_: it)
    return summary["weights_sha256"]


def test_the_same_seed_trains_the_same_weights(feature_set):
    assert _digest(feature_set, 3) == _digest(feature_set, 3)


def test_another_seed_trains_other_weights(feature_set):
    assert _digest(feature_set, 3) != _digest(feature_set, 4)


def test_random_window_mode_trains_deterministically_too(feature_set):
    preset = TINY.with_overrides(
        features=TINY.features.__class__(window_s=0.8, step_s=0.5, temporal_mode="random")
    )
    assert _digest(feature_set, 5, preset) == _digest(feature_set, 5, preset)


def test_early_stopping_ends_training_after_the_configured_stale_epochs(feature_set):
    preset = TINY.with_overrides(epochs=30, early_stop_epochs=1, learning_rate=0.5)
    _, history, summary = fit(feature_set, preset.features, preset, FixedSeed(1), lambda it, **_: it)
    assert summary["stopped_early"] and len(history) < 30
    assert summary["best_val_loss"] == min(h["val_loss"] for h in history)


def test_checkpoints_are_chosen_on_clean_and_noisy_validation_windows(feature_set):
    _, _, summary = fit(feature_set, TINY.features, TINY, FixedSeed(1), lambda it, **_: it)
    per_variant = sum(len(W.file_windows(f.variant("clean"), TINY.features)) for f in feature_set["val"])
    assert summary["val_variants"] == ["clean", "noisy"]
    assert summary["val_windows"] == 2 * per_variant


def test_a_weight_average_trains_deterministically_and_keeps_other_weights_than_the_raw_ones(feature_set):
    averaged = TINY.with_overrides(ema_decay=0.9)
    assert _digest(feature_set, 3, averaged) == _digest(feature_set, 3, averaged)
    assert _digest(feature_set, 3, averaged) != _digest(feature_set, 3)


def test_a_weight_average_decay_outside_zero_to_one_is_refused(feature_set):
    with pytest.raises(ValueError, match="ema_decay"):
        _digest(feature_set, 3, TINY.with_overrides(ema_decay=1.0))


def test_input_standardisation_uses_the_training_files_statistics_and_trains_deterministically(feature_set):
    preset = TINY.with_overrides(standardize_input=True)
    model, _, _ = fit(feature_set, preset.features, preset, FixedSeed(3), lambda it, **_: it)
    mean, std = input_statistics(feature_set["train"])
    np.testing.assert_allclose(model.input_mean.numpy(), mean, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(model.input_scale.numpy(), 1.0 / std, rtol=1e-6)
    assert _digest(feature_set, 3, preset) == _digest(feature_set, 3, preset) != _digest(feature_set, 3)
    # without the option the model keeps the identity (SPIRA's raw MFCC input)
    plain, _, _ = fit(feature_set, TINY.features, TINY, FixedSeed(3), lambda it, **_: it)
    assert not plain.input_mean.any() and bool((plain.input_scale == 1).all())


def test_input_statistics_leave_a_constant_coefficient_unscaled():
    frames = np.random.default_rng(0).normal(5.0, 2.0, (50, 3)).astype(np.float32)
    frames[:, 1] = 4.0
    mean, std = input_statistics([FileFeatures("a.wav", "0", 0, {"clean": frames})])
    assert mean[1] == pytest.approx(4.0) and std[1] == 1.0
    assert std[0] == pytest.approx(frames[:, 0].std(), rel=1e-5)
