"""The fast model computes SpiraConvV2's eval-mode function: parity within 1e-5 with the eager module.

Tolerance: absolute, on probabilities. Probabilities live in [0, 1], so an absolute bound is the meaningful
one (a relative bound would be vacuous near 1 and needlessly strict near 0); both implementations are
float32 and differ only in the order of operations, which moves results by ~1e-7.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.signal
import torch
from torch import nn

from spira_core import audio
from spira_core import features as F
from spira_core import windows as W
from spira_core.fastpath import FastSpiraConvV2, FastWindowModel, ParityError, UnsupportedModuleError
from spira_core.model import SpiraConvV2, build_model, predict_windows
from spira_core.params import FeatureParams

ATOL = 1e-5


def _model(params: FeatureParams, seed: int, spread_norm: bool = True) -> SpiraConvV2:
    """A SpiraConvV2 with seeded weights; GroupNorm affines drawn like trained ones (mixed signs, offsets),
    which exercises negative scales before Mish and MaxPool."""
    torch.manual_seed(seed)
    model = build_model(params).eval()
    if spread_norm:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.GroupNorm):
                    m.weight.normal_(0.0, 1.0)
                    m.bias.normal_(0.0, 0.5)
    return model


def _voice_like(seconds: float, rate: int, seed: int) -> np.ndarray:
    """Source-filter speech stand-in: a jittered glottal pulse train with harmonics, two formant resonators,
    breath noise and a pause, so MFCCs have a large c0, voiced and silent frames, and time structure."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = (
        rng.uniform(90, 220)
        * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
        * (1 + 0.01 * rng.standard_normal(t.size))
    )
    phase = 2 * np.pi * np.cumsum(f0) / rate
    source = sum(np.sin(h * phase) / h for h in range(1, 25))
    out = np.zeros_like(source)
    for formant, bw in ((rng.uniform(500, 800), 90.0), (rng.uniform(1000, 2000), 120.0)):
        r = np.exp(-np.pi * bw / rate)
        theta = 2 * np.pi * formant / rate
        out += scipy.signal.lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], source)
    out += 0.02 * rng.standard_normal(t.size)
    pause = slice(int(0.4 * t.size), int(0.5 * t.size))
    out[pause] *= 0.01
    return (0.3 * out / np.max(np.abs(out))).astype(np.float32)


def _real_feature_windows(params: FeatureParams, n_clips: int = 3) -> np.ndarray:
    """Windows cut from MFCCs of generated 48 kHz clips, resampled as serving does."""
    clips = []
    for seed in range(n_clips):
        wav48 = _voice_like(5.7 + seed, 48_000, seed)
        wav = audio.resample(wav48, 48_000, params.sample_rate)
        clips.append(W.file_windows(F.mfcc(wav, params), params))
    return np.concatenate(clips)


@pytest.mark.parametrize("batch", [1, 3, 8, 17])
def test_fast_model_matches_eager_within_1e_5_on_random_windows(batch):
    params = FeatureParams()
    model = _model(params, seed=batch)
    x = (
        np.random.default_rng(batch)
        .normal(0.0, 20.0, (batch, params.input_frames, params.n_mfcc))
        .astype(np.float32)
    )
    fast = FastSpiraConvV2.from_module(model)
    np.testing.assert_allclose(fast.predict(x), predict_windows(model, x), rtol=0, atol=ATOL)


@pytest.mark.parametrize("mode", ["window", "padding"])
def test_fast_model_matches_eager_within_1e_5_on_windows_of_real_features(mode):
    params = FeatureParams(temporal_mode=mode, max_len_s=8.0)
    x = _real_feature_windows(params)
    assert x.shape[1:] == (params.input_frames, params.n_mfcc)
    assert np.abs(x[..., 0]).max() > 100  # c0 is large: the case where GroupNorm statistics lose precision
    for seed in (0, 1):
        model = _model(params, seed)
        expected = predict_windows(model, x)
        assert expected.std() > 1e-4  # the probabilities vary, so parity is not trivially met
        np.testing.assert_allclose(FastSpiraConvV2.from_module(model).predict(x), expected, rtol=0, atol=ATOL)


def test_fast_model_applies_the_input_standardisation_as_the_eager_module_does():
    params = FeatureParams()
    x = _real_feature_windows(params)
    frames = x.reshape(-1, params.n_mfcc).astype(np.float64)
    model = _model(params, seed=3)
    plain = predict_windows(model, x)
    model.set_input_standardization(frames.mean(axis=0), frames.std(axis=0))
    expected = predict_windows(model, x)
    assert np.abs(expected - plain).max() > 1e-3  # the affine changes the answers, so parity is not free
    np.testing.assert_allclose(FastSpiraConvV2.from_module(model).predict(x), expected, rtol=0, atol=ATOL)


def test_fast_model_matches_eager_with_default_initialised_weights_and_in_padding_mode():
    params = FeatureParams(temporal_mode="padding")
    model = _model(params, seed=5, spread_norm=False)
    x = np.random.default_rng(5).normal(0.0, 10.0, (4, params.input_frames, params.n_mfcc)).astype(np.float32)
    np.testing.assert_allclose(
        FastSpiraConvV2.from_module(model).predict(x), predict_windows(model, x), rtol=0, atol=ATOL
    )


def test_constant_and_large_offset_windows_keep_parity():
    params = FeatureParams()
    model = _model(params, seed=9)
    rng = np.random.default_rng(9)
    x = np.stack(
        [
            np.zeros((params.input_frames, params.n_mfcc)),  # zero variance: GroupNorm's eps decides
            np.full((params.input_frames, params.n_mfcc), 7.0),
            1000.0 + rng.normal(0.0, 1.0, (params.input_frames, params.n_mfcc)),  # mean far above the spread
            rng.normal(0.0, 1e3, (params.input_frames, params.n_mfcc)),  # Mish far into both tails
        ]
    ).astype(np.float32)
    np.testing.assert_allclose(
        FastSpiraConvV2.from_module(model).predict(x), predict_windows(model, x), rtol=0, atol=ATOL
    )


def test_chunking_segmenting_and_blocking_do_not_change_the_result():
    params = FeatureParams()
    model = _model(params, seed=2)
    x = (
        np.random.default_rng(2)
        .normal(0.0, 10.0, (11, params.input_frames, params.n_mfcc))
        .astype(np.float32)
    )
    default = FastSpiraConvV2.from_module(model).predict(x)
    odd = FastSpiraConvV2.from_module(model, chunk=3, segment=7, gemm_columns=100).predict(x)
    np.testing.assert_allclose(odd, default, rtol=0, atol=1e-6)


def test_a_fast_model_built_from_other_weights_gives_other_probabilities():
    params = FeatureParams()
    x = np.random.default_rng(4).normal(0.0, 10.0, (6, params.input_frames, params.n_mfcc)).astype(np.float32)
    a = FastSpiraConvV2.from_module(_model(params, seed=1)).predict(x)
    b = FastSpiraConvV2.from_module(_model(params, seed=2)).predict(x)
    assert np.abs(a - b).max() > 1e-3


def test_concurrent_callers_get_the_same_answers_as_one_caller():
    params = FeatureParams()
    fast = FastSpiraConvV2.from_module(_model(params, seed=6))
    inputs = [
        np.random.default_rng(s)
        .normal(0.0, 10.0, (s + 1, params.input_frames, params.n_mfcc))
        .astype(np.float32)
        for s in range(4)
    ]
    expected = [fast.predict(x) for x in inputs]
    results: dict[int, list[np.ndarray]] = {i: [] for i in range(4)}

    def worker(i: int) -> None:
        for _ in range(3):
            results[i].append(fast.predict(inputs[i]))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        for got in results[i]:
            np.testing.assert_array_equal(got, expected[i])


def test_the_window_model_predicts_float64_probabilities_and_an_empty_batch_gives_none():
    params = FeatureParams()
    model = FastWindowModel(_model(params, seed=3))
    x = np.random.default_rng(3).normal(0.0, 10.0, (2, params.input_frames, params.n_mfcc)).astype(np.float32)
    out = model.predict(x)
    assert out.dtype == np.float64 and out.shape == (2,)
    assert ((out > 0) & (out < 1)).all()
    assert model.predict(np.zeros((0, params.input_frames, params.n_mfcc), np.float32)).shape == (0,)


def test_the_parity_check_passes_for_its_own_weights_and_fails_for_others():
    params = FeatureParams()
    x = np.random.default_rng(8).normal(0.0, 10.0, (3, params.input_frames, params.n_mfcc)).astype(np.float32)
    reference = _model(params, seed=8)
    assert FastWindowModel(reference).check_parity(x) <= ATOL
    mismatched = FastWindowModel(reference, fast=FastSpiraConvV2.from_module(_model(params, seed=10)))
    with pytest.raises(ParityError, match="differs from the eager reference"):
        mismatched.check_parity(x)


def test_windows_of_the_wrong_shape_are_refused():
    fast = FastSpiraConvV2.from_module(_model(FeatureParams(), seed=0))
    with pytest.raises(ValueError, match=r"expected windows \[N, 401, 40\]"):
        fast.predict(np.zeros((1, 400, 40), np.float32))


def test_a_module_that_is_not_spiraconv_v2_is_refused_naming_the_layer():
    model = _model(FeatureParams(), seed=0)
    model.conv[2] = nn.ReLU()  # Mish replaced: the rewrite would compute another function
    with pytest.raises(UnsupportedModuleError, match=r"layer 'conv\.2' \(ReLU\)") as caught:
        FastSpiraConvV2.from_module(model)
    assert caught.value.layer == "conv.2"
    with pytest.raises(UnsupportedModuleError, match="not a SpiraConvV2"):
        FastSpiraConvV2.from_module(nn.Linear(3, 1))


class _Variant(nn.Module):
    """A SpiraConvV2-like network of another shape: other channels, kernels, dilations and groups, a block
    without pooling in the middle, dropout before the pool, no bias in one conv, flatten without the time
    transpose and two hidden layers. `extra` is inserted after the second GroupNorm."""

    def __init__(self, frames: int = 201, features: int = 24, extra: nn.Module | None = None) -> None:
        super().__init__()
        self.input_frames, self.n_features = frames, features
        self.register_buffer("input_mean", torch.linspace(-3.0, 2.0, features))
        self.register_buffer("input_scale", torch.linspace(0.5, 1.5, features))
        self.conv = nn.Sequential(
            nn.Conv2d(1, 12, kernel_size=(5, 1), dilation=(3, 1)),
            nn.GroupNorm(3, 12),
            nn.Mish(),
            nn.Dropout(0.3),
            nn.MaxPool2d(kernel_size=(2, 1)),
            nn.Conv2d(12, 6, kernel_size=(4, 1), bias=False),
            nn.GroupNorm(2, 6),
            *([extra] if extra is not None else []),
            nn.Mish(),
            nn.Conv2d(6, 10, kernel_size=(3, 1), dilation=(2, 1)),
            nn.GroupNorm(5, 10),
            nn.Mish(),
            nn.MaxPool2d(kernel_size=(2, 1)),
        )
        with torch.no_grad():
            out = self.conv(torch.zeros(1, 1, frames, features))
        self.fc1 = nn.Linear(out.numel(), 30)
        self.fc2 = nn.Linear(30, 7)
        self.fc3 = nn.Linear(7, 1)
        self.act = nn.Mish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.input_mean) * self.input_scale
        x = torch.flatten(self.conv(x.unsqueeze(1)), 1)
        x = self.act(self.fc1(x))
        x = nn.functional.mish(self.fc2(x))
        return torch.sigmoid(self.fc3(x))


class _ShapeReadingVariant(_Variant):
    """The same network flattening with `x.view(x.shape[0], -1)`: a shape read, not a layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.input_mean) * self.input_scale
        x = self.conv(x.unsqueeze(1))
        x = self.act(self.fc1(x.view(x.shape[0], -1)))
        x = nn.functional.mish(self.fc2(x))
        return torch.sigmoid(self.fc3(x))


@pytest.mark.parametrize("variant", [_Variant, _ShapeReadingVariant])
def test_another_block_configuration_is_derived_from_its_layers_and_matches_eager(variant):
    torch.manual_seed(5)
    model = variant().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.GroupNorm):
                m.weight.normal_(0.0, 1.0)
                m.bias.normal_(0.0, 0.5)
    fast = FastSpiraConvV2.from_module(model)
    assert [(b.c_in, b.c_out, b.kernel, b.dilation, b.groups, b.pool) for b in fast.blocks] == [
        (1, 12, 5, 3, 3, True),
        (12, 6, 4, 1, 2, False),
        (6, 10, 3, 2, 5, True),
    ]
    x = np.random.default_rng(5).normal(0.0, 10.0, (9, 201, 24)).astype(np.float32)
    worst = np.max(np.abs(fast.predict(x) - predict_windows(model, x)))
    assert worst <= ATOL


@pytest.mark.parametrize(
    ("extra", "name"),
    [(nn.ReLU(), "conv.7"), (nn.BatchNorm2d(6), "conv.7"), (nn.Conv2d(6, 6, 1), "conv.7")],
)
def test_a_model_with_an_extra_layer_is_refused_at_build_time_naming_that_layer(extra, name):
    with pytest.raises(UnsupportedModuleError) as caught:
        FastSpiraConvV2.from_module(_Variant(extra=extra))
    assert caught.value.layer == name
    assert f"'{name}' ({type(extra).__name__})" in str(caught.value)


def test_an_operation_the_rewrite_does_not_know_is_refused_naming_it():
    class Scaled(_Variant):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x * 2.0)

    with pytest.raises(UnsupportedModuleError, match=r"layer 'mul' \(mul\)") as caught:
        FastSpiraConvV2.from_module(Scaled())
    assert caught.value.layer == "mul"


def test_a_branching_forward_pass_is_refused():
    class Residual(_Variant):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.act(self.fc1(torch.flatten(self.conv(x.unsqueeze(1)), 1)))
            return torch.sigmoid(self.fc3(self.fc2(h) + h[:, :7]))

    with pytest.raises(UnsupportedModuleError, match="one chain of layers"):
        FastSpiraConvV2.from_module(Residual())


def test_the_fused_mish_matches_mish_over_its_whole_range_including_where_its_terms_overflow():
    from spira_core.fastpath.model import LOG2E, _mish2_

    z = torch.cat(
        [torch.linspace(-200.0, 200.0, 40001), torch.tensor([-1e30, -88.0, 63.9, 64.1, 127.9, 1e30])]
    )
    expected = nn.functional.mish(z.double()) * LOG2E  # log2(e)·mish(z), in float64
    got = _mish2_((z * LOG2E).float().contiguous(), torch.empty(z.shape)).double()
    assert torch.isfinite(got).all()
    # float32: a few ulp of z' (for z ≪ 0, mish ≈ z·e^z is a difference of two values near z', as in the
    # eager kernel's float32 result, so the bound is relative to z', not to mish)
    assert ((got - expected).abs() <= 3e-7 * (z.double() * LOG2E).abs()).all()


def test_the_fast_model_runs_the_fused_kernels_by_default_and_both_its_paths_match_eager():
    params = FeatureParams()
    model = _model(params, seed=11)
    rng = np.random.default_rng(11)
    x = np.concatenate(
        [
            rng.normal(0.0, 20.0, (5, params.input_frames, params.n_mfcc)),
            np.zeros((1, params.input_frames, params.n_mfcc)),  # GroupNorm's eps decides
            1000.0 + rng.normal(0.0, 1.0, (1, params.input_frames, params.n_mfcc)),  # offset ≫ spread
            rng.normal(0.0, 1e3, (1, params.input_frames, params.n_mfcc)),  # Mish far into both tails
        ]
    ).astype(np.float32)
    expected = predict_windows(model, x)
    fused = FastSpiraConvV2.from_module(model)
    passes = FastSpiraConvV2.from_module(model, fused=False)
    assert fused.fused and not passes.fused
    for fast in (fused, passes):
        for batch in (x[:1], x):
            np.testing.assert_allclose(fast.predict(batch), expected[: len(batch)], rtol=0, atol=ATOL)


def test_the_kernels_exp2_is_within_two_ulp_over_the_float32_range_and_keeps_nan():
    from spira_core.fastpath import kernels

    x = np.concatenate([np.linspace(-126.0, 127.0, 200_001), [-0.5, 0.5, 0.0, 1e-30, -1e-30, np.nan]]).astype(
        np.float32
    )
    got = np.empty_like(x)
    kernels.exp2_array(x, got)
    expected = np.exp2(x.astype(np.float64))
    finite = ~np.isnan(x)
    assert np.all(np.abs(got[finite] - expected[finite]) <= 2.4e-7 * expected[finite])
    assert np.isnan(got[-1])


def test_the_kernels_mish_matches_mish_over_its_whole_range_including_where_its_terms_overflow():
    from spira_core.fastpath import kernels
    from spira_core.fastpath.model import LOG2E

    z = np.concatenate([np.linspace(-200.0, 200.0, 40001), [-1e30, -88.0, 63.9, 64.1, 127.9, 1e30]])
    expected = nn.functional.mish(torch.from_numpy(z)).numpy() * LOG2E  # float64
    zp = (z * LOG2E).astype(np.float32)
    got = np.empty_like(zp)
    kernels.mish2_array(zp, got)
    assert np.all(np.isfinite(got))
    # as the torch version's bound: a few ulp of z' (mish ≈ z·e^z for z ≪ 0 is a difference near z')
    assert np.all(np.abs(got - expected) <= 3e-7 * np.abs(z * LOG2E))
    nan = np.full(3, np.nan, np.float32)
    kernels.mish2_array(nan, nan)
    assert np.all(np.isnan(nan))


def test_without_a_writable_numba_cache_the_kernels_compile_in_memory(monkeypatch):
    from numba.core import caching

    from spira_core.fastpath import kernels

    # what numba finds in a read-only image without NUMBA_CACHE_DIR: no cache locator at all
    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])

    def twice(x, out):
        for i in range(x.size):
            out[i] = 2.0 * x[i]

    compiled = kernels._compiled()(twice)
    out = np.empty(3)
    compiled(np.arange(3.0), out)
    assert out.tolist() == [0.0, 2.0, 4.0]
    assert type(compiled._cache).__name__ == "NullCache"  # compiled, not cached


class _UnpooledFirstBlock(_Variant):
    """The variant with its first MaxPool removed: block 1's kernel writes every conv frame, unpooled."""

    def __init__(self) -> None:
        super().__init__()
        del self.conv[4]  # conv.0 Conv2d, 1 GroupNorm, 2 Mish, 3 Dropout, 4 MaxPool2d
        with torch.no_grad():
            out = self.conv(torch.zeros(1, 1, self.input_frames, self.n_features))
        self.fc1 = nn.Linear(out.numel(), 30)


def test_a_first_block_without_pooling_matches_eager_in_both_paths():
    torch.manual_seed(6)
    model = _UnpooledFirstBlock().eval()
    x = np.random.default_rng(6).normal(0.0, 10.0, (3, 201, 24)).astype(np.float32)
    expected = predict_windows(model, x)
    for fused in (True, False):
        fast = FastSpiraConvV2.from_module(model, fused=fused)
        assert not fast.blocks[0].pool
        np.testing.assert_allclose(fast.predict(x), expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("pool", [True, False])
def test_a_later_blocks_kernel_gives_a_window_alone_the_values_it_gives_it_in_a_batch(pool):
    from spira_core.fastpath import kernels

    rng = np.random.default_rng(7)
    # 16 channels in 8 groups; 183 frames (odd: the pool drops one; 183·40 is no multiple of the lanes)
    y = rng.normal(3.0, 2.0, (16, 183, 3, 40)).astype(np.float32)
    bias, gamma = rng.normal(0.0, 1.0, 16).astype(np.float32), rng.normal(0.0, 1.0, 16).astype(np.float32)
    beta = rng.normal(0.0, 0.5, 16).astype(np.float32)
    frames = 183 // 2 if pool else 183
    batched = np.empty((16, frames, 3, 40), np.float32)
    kernels.norm_mish_pool(y, bias, 8, gamma, beta, 1e-5, pool, batched)
    for b in range(3):
        alone = np.empty((16, frames, 1, 40), np.float32)
        kernels.norm_mish_pool(
            np.ascontiguousarray(y[:, :, b : b + 1]), bias, 8, gamma, beta, 1e-5, pool, alone
        )
        np.testing.assert_allclose(alone[:, :, 0], batched[:, :, b], rtol=2e-7, atol=1e-7)
