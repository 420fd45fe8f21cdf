"""The train stage scores validation windows with the fast path; its loss must be the eager module's loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spira_core.fastpath.model import FastSpiraConvV2, UnsupportedModuleError
from spira_core.model import SpiraConvV2
from training.stages.train import mean_bce, validation_loss


def _windows_and_eager_loss(model: nn.Module, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Random windows and labels, and the eager module's eval-mode BCE on them (the module is left as it
    was: training or eval)."""
    rng = np.random.default_rng(seed)
    windows = (rng.standard_normal((n, 401, 40)) * 20).astype(np.float32)
    labels = (rng.random(n) < 0.5).astype(np.float32)
    was_training = model.training
    with torch.no_grad():
        eager = nn.BCELoss()(model.eval()(torch.from_numpy(windows)).reshape(-1), torch.from_numpy(labels))
    model.train(was_training)
    return windows, labels, eager.item()


def test_mean_bce_matches_torchs_bce_loss_including_its_clamp_at_certain_mistakes():
    probs = np.array([0.0, 1.0, 0.3, 0.999999, 1e-12, 0.5])
    labels = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    expected = nn.BCELoss()(torch.tensor(probs), torch.tensor(labels)).item()
    assert abs(mean_bce(probs, labels) - expected) < 1e-9


def test_the_validation_loss_is_the_eager_modules_loss_on_every_window():
    torch.manual_seed(3)
    model = SpiraConvV2(input_frames=401).train()  # mid-training state: dropout on, as during an epoch
    windows, labels, eager = _windows_and_eager_loss(model, 12, seed=0)
    assert abs(validation_loss(model, windows, labels) - eager) < 1e-5
    assert model.training  # scoring leaves the training module as it was


def test_the_weight_average_moves_each_parameter_by_one_minus_the_decay_toward_the_model():
    from training.stages.train import _update_average

    torch.manual_seed(0)
    average, model = SpiraConvV2(input_frames=101), SpiraConvV2(input_frames=101)
    before = [p.detach().clone() for p in average.parameters()]
    _update_average(average, model, decay=0.75)
    for old, new, target in zip(before, average.parameters(), model.parameters(), strict=True):
        assert torch.allclose(new, 0.75 * old + 0.25 * target, atol=1e-7)


def test_a_model_the_fast_path_refuses_is_scored_by_the_eager_module_with_the_same_loss():
    torch.manual_seed(5)
    model = SpiraConvV2(input_frames=401)
    # a layer the fast path does not implement: training must go on without it, eagerly
    first_mish = next(name for name, m in model.named_modules() if isinstance(m, nn.Mish))
    parent, _, attr = first_mish.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, nn.ReLU())
    with pytest.raises(UnsupportedModuleError):
        FastSpiraConvV2.from_module(model)
    windows, labels, eager = _windows_and_eager_loss(model, 6, seed=1)
    assert abs(validation_loss(model, windows, labels) - eager) < 1e-6


def test_a_model_training_with_the_fast_layers_is_validated_by_the_cpu_fast_path():
    from training.fast_layers import use_fast_layers
    from training.validation import fast_model

    torch.manual_seed(6)
    model = use_fast_layers(SpiraConvV2(input_frames=401))
    assert fast_model(model) is not None  # the fast path applies: validation does not fall back to eager
    windows, labels, eager = _windows_and_eager_loss(model, 5, seed=2)
    assert abs(validation_loss(model, windows, labels) - eager) < 1e-5
