"""Serving uses the fast CPU model only when it reproduces the eager model; answers are the same either way."""

from __future__ import annotations

import numpy as np
import torch

from serving.inference import FastWindowModelAdapter, Predictor, TorchWindowModel
from spira_core.model import ModelBundle, build_model
from spira_core.params import FeatureParams
from tests.fakes.serving import wav_bytes


def _bundle(seed: int = 3) -> ModelBundle:
    torch.manual_seed(seed)
    params = FeatureParams()
    return ModelBundle(build_model(params).eval(), params, 0.5, {})


def test_the_predictor_serves_the_fast_model_after_its_parity_check() -> None:
    predictor = Predictor.from_bundle(_bundle(), "1")
    assert isinstance(predictor.model, FastWindowModelAdapter)
    assert predictor.model.parity <= 1e-5


def test_fast_and_eager_answers_agree_within_1e_5_on_real_audio() -> None:
    bundle = _bundle()
    fast = Predictor.from_bundle(bundle, "1")
    eager = Predictor(bundle.params, bundle.threshold, "1", TorchWindowModel(bundle.model))
    for rate, channels in ((16_000, 1), (48_000, 2)):
        data = wav_bytes(6.5, rate, channels)
        assert abs(fast.predict_bytes(data)["probability"] - eager.predict_bytes(data)["probability"]) < 1e-5
    windows = np.random.default_rng(0).normal(0, 20, size=(5, 401, 40)).astype(np.float32)
    assert np.max(np.abs(fast.model.predict(windows) - eager.model.predict(windows))) < 1e-5
