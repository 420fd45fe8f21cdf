"""fast_mfcc is spira_core.features.mfcc computed with less work: the same frames to 1e-5 of their scale.

Tolerance: |fast - reference| <= 1e-5 · max|reference| per clip (relative to the feature scale), not an
absolute 1e-5. The coefficients reach a few hundred (c0 sums 40 dB values), where one float32 step is
already 3e-5, so an absolute 1e-5 would fail on rounding alone; scaled to the largest coefficient, 1e-5 is
still ~70x tighter than the observed error of the reference against its own float32 rounding margin.
"""

from __future__ import annotations

import numpy as np
import pytest

from spira_core import features as F
from spira_core import windows as W
from spira_core.fastpath import fast_mfcc
from spira_core.fastpath.mfcc import BLOCK_FRAMES
from spira_core.params import FeatureParams

RTOL_SCALE = 1e-5


def _assert_close_to_reference(wav: np.ndarray, params: FeatureParams) -> None:
    expected = F.mfcc(wav, params)
    got = fast_mfcc(wav, params)
    assert got.shape == expected.shape and got.dtype == np.float32
    scale = max(1.0, float(np.abs(expected).max()))
    err = float(np.abs(got - expected).max())
    assert err <= RTOL_SCALE * scale, f"max error {err:.3g} for coefficients up to {scale:.3g}"


def _voice_like(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = rng.uniform(100, 200) + 10 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(h * phase) / h for h in range(1, 16))
    envelope = np.where((t > 0.3 * t[-1]) & (t < 0.4 * t[-1]), 0.01, 1.0)  # a pause: frames near the floor
    return (0.3 * voiced * envelope + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("seconds", [0.03, 0.0375, 0.0376, 1.0, 5.7, 9.5])
def test_fast_mfcc_matches_the_reference_for_voice_like_clips_of_any_length(seconds):
    # 0.03 s is shorter than n_fft // 2 samples (zero-extended), 0.0376 s just long enough to reflect
    _assert_close_to_reference(_voice_like(seconds, seed=int(seconds * 100)), FeatureParams())


def test_fast_mfcc_matches_the_reference_across_several_fft_blocks_and_for_noise():
    rate = FeatureParams().sample_rate
    n = (3 * BLOCK_FRAMES + 5) * FeatureParams().hop_length
    _assert_close_to_reference(
        np.random.default_rng(1).standard_normal(n).astype(np.float32), FeatureParams()
    )
    assert F.n_frames(n, FeatureParams()) > 3 * BLOCK_FRAMES
    _assert_close_to_reference(_voice_like(n / rate, seed=2), FeatureParams())


@pytest.mark.parametrize(
    "params",
    [
        FeatureParams(n_mfcc=20, n_mels=64),
        FeatureParams(n_fft=512, win_length=400, hop_length=128, f_min=50.0, f_max=7000.0),
        FeatureParams(top_db=None),  # no floor: silent frames keep their -100 dB
        FeatureParams(sample_rate=8000, n_fft=400, win_length=200, hop_length=80),
    ],
)
def test_fast_mfcc_follows_every_feature_parameter(params):
    _assert_close_to_reference(_voice_like(2.0, rate=params.sample_rate, seed=3), params)


def test_silence_gives_the_reference_floor_values():
    _assert_close_to_reference(np.zeros(16000, np.float32), FeatureParams())


def test_model_windows_from_fast_features_match_windows_from_reference_features():
    params = FeatureParams()
    wav = _voice_like(6.3, seed=4)
    fast = W.file_windows(fast_mfcc(wav, params), params)
    ref = W.file_windows(F.mfcc(wav, params), params)
    assert fast.shape == ref.shape == (3, params.input_frames, params.n_mfcc)
    assert np.abs(fast - ref).max() <= RTOL_SCALE * np.abs(ref).max()


def test_a_second_call_on_the_same_thread_does_not_see_the_first_calls_samples():
    # scratch buffers are reused: a long clip then a short one must give the short clip's own features
    params = FeatureParams()
    fast_mfcc(_voice_like(9.0, seed=5), params)
    _assert_close_to_reference(_voice_like(0.5, seed=6), params)
