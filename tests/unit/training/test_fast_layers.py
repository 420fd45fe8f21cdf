"""The training-time layers compute the functions (and gradients) of the layers they replace."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from spira_core.fastpath import FastWindowModel
from spira_core.model import SpiraConvV2, weights_digest
from training.fast_layers import FastDropout, FastMish, PairMaxPool, mish, reference_layers, use_fast_layers


def _grad(fn, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_(True)
    y = fn(x)
    (dx,) = torch.autograd.grad(y, x, g)
    return y.detach(), dx


def test_mish_and_its_gradient_match_torch_on_activations_of_every_size():
    torch.manual_seed(0)
    x = torch.randn(3, 8, 50, 40) * 6
    g = torch.randn_like(x)
    # one intra-op thread: on the AVX-512 host of 2026-12-07 (torch 2.13, MKL 2024.2), once torch ran in
    # other Python threads (the serving tests' compute threads), an in-place division here came out 1e-4
    # off on one OpenMP worker's chunk, differently on each call; torch's own mish stayed exact
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        y0, d0 = _grad(nn.functional.mish, x, g)
        y1, d1 = _grad(mish, x, g)
    finally:
        torch.set_num_threads(threads)
    assert torch.allclose(y1, y0, atol=2e-6, rtol=1e-6)
    assert torch.allclose(d1, d0, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("value", [-200.0, -90.0, -30.0, -17.0, -1.19, 0.0, 1e-6, 19.0, 21.0, 80.0, 1e6])
def test_mish_stays_finite_and_exact_in_its_tails(value):
    x = torch.tensor([value])
    g = torch.ones(1)
    y0, d0 = _grad(nn.functional.mish, x, g)
    y1, d1 = _grad(mish, x, g)
    assert torch.isfinite(y1).all() and torch.isfinite(d1).all()
    assert torch.allclose(y1, y0, atol=1e-7, rtol=1e-6)
    assert torch.allclose(d1, d0, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("frames", [9, 10, 389])
def test_pair_pooling_matches_max_pool_values_and_gradients_also_on_ties(frames):
    torch.manual_seed(1)
    x = torch.randn(2, 3, frames, 5)
    x[:, :, 1] = x[:, :, 0]  # a tie: max_pool2d sends the gradient to the first frame
    g = torch.randn(2, 3, frames // 2, 5)
    y0, d0 = _grad(lambda t: nn.functional.max_pool2d(t, (2, 1)), x, g)
    y1, d1 = _grad(PairMaxPool(), x, g)
    assert torch.equal(y1, y0)
    assert torch.equal(d1, d0)


def test_fast_dropout_keeps_the_expected_share_scaled_and_is_the_identity_in_eval_mode():
    torch.manual_seed(2)
    layer = FastDropout(0.7)
    x = torch.ones(200_000)
    y = layer(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.3) < 0.005
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.3))
    assert torch.equal(layer.eval()(x), x)


def test_fast_dropout_draws_from_torchs_seeded_generator():
    layer = FastDropout(0.5)
    torch.manual_seed(3)
    a = layer(torch.ones(1000))
    torch.manual_seed(3)
    b = layer(torch.ones(1000))
    assert torch.equal(a, b)


def test_a_model_with_fast_layers_keeps_its_weights_and_eval_function():
    torch.manual_seed(4)
    model = SpiraConvV2(401).eval()
    fast = use_fast_layers(copy.deepcopy(model))
    kinds = [type(m) for m in fast.modules()]
    assert nn.Mish not in kinds and nn.Dropout not in kinds and nn.MaxPool2d not in kinds
    assert FastMish in kinds and PairMaxPool in kinds and FastDropout in kinds
    assert weights_digest(fast) == weights_digest(model)
    x = torch.randn(3, 401, 40) * 20
    with torch.no_grad():
        assert torch.allclose(fast(x), model(x), atol=1e-6)
    # with torch's own layers back, the CPU fast path reads the swapped module as the SpiraConvV2 it is
    back = reference_layers(fast)
    assert [type(m) for m in back.modules()] == [type(m) for m in model.eval().modules()]
    assert weights_digest(back) == weights_digest(model)
    assert FastWindowModel(back).check_parity(x.numpy()) <= 1e-5


def test_a_training_step_with_fast_layers_gives_the_eager_gradients():
    torch.manual_seed(5)
    model = SpiraConvV2(401)
    fast = use_fast_layers(copy.deepcopy(model))
    # dropout draws differ between the two kinds of layer, so compare without it
    for m in (model, fast):
        for layer in m.modules():
            if isinstance(layer, nn.Dropout):
                layer.p = 0.0
    x, y = torch.randn(4, 401, 40) * 20, torch.tensor([0.0, 1.0, 1.0, 0.0])
    grads = []
    for m in (model, fast):
        loss = nn.functional.binary_cross_entropy(m(x).reshape(-1), y)
        grads.append(torch.autograd.grad(loss, list(m.parameters())))
    for g0, g1 in zip(*grads, strict=True):
        assert torch.allclose(g1, g0, atol=1e-6, rtol=1e-4)
