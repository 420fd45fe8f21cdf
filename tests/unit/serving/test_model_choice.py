"""Serving uses the accelerator, else the fast CPU model, only when it reproduces the eager model; answers are
the same either way."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

import serving.inference
from serving.inference import (
    AcceleratorWindowModel,
    FastWindowModelAdapter,
    Predictor,
    TorchWindowModel,
    best_window_model,
)
from serving.metrics import prometheus_metrics
from spira_core import audio as A
from spira_core import features as F
from spira_core import windows as W
from spira_core.model import ModelBundle, build_model
from spira_core.params import FeatureParams
from tests.fakes.model_choice import RecordingModelChoice
from tests.fakes.serving import wav_bytes


@pytest.fixture(autouse=True)
def _no_gpu(monkeypatch) -> None:
    """The CPU choices are tested on any machine; the accelerator tests pass the CPU as the device."""
    monkeypatch.setattr(serving.inference, "available_accelerator", lambda: None)


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


def _bundle_the_fast_path_refuses() -> ModelBundle:
    """A SpiraConvV2 whose first activation is not Mish: the eager module runs, the rewrite refuses it."""
    bundle = _bundle()
    bundle.model.conv[2] = nn.ReLU()
    return bundle


def test_a_fallback_to_the_eager_model_is_logged_as_a_warning_and_counted(caplog) -> None:
    metrics = RecordingModelChoice()
    with caplog.at_level(logging.WARNING, logger="serving.inference"):
        predictor = Predictor.from_bundle(_bundle_the_fast_path_refuses(), "1", metrics=metrics)
    assert isinstance(predictor.model, TorchWindowModel)
    assert metrics.fallbacks == ["UnsupportedModuleError"]
    assert any("eager model" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert 0.0 <= predictor.predict_bytes(wav_bytes(5.0))["probability"] <= 1.0


def test_the_fast_model_is_not_counted_as_a_fallback() -> None:
    metrics = RecordingModelChoice()
    Predictor.from_bundle(_bundle(), "1", metrics=metrics)
    assert metrics.fallbacks == []


def test_prometheus_counts_fallbacks_by_reason() -> None:
    from prometheus_client import REGISTRY

    def count() -> float:
        return (
            REGISTRY.get_sample_value("spira_model_fallbacks_total", {"reason": "UnsupportedModuleError"})
            or 0.0
        )

    before = count()
    best_window_model(_bundle_the_fast_path_refuses(), prometheus_metrics())
    assert count() == before + 1


def test_served_windows_carry_the_reference_features_within_1e_5_of_their_scale() -> None:
    predictor = Predictor.from_bundle(_bundle(), "1")
    params = predictor.params
    for rate, channels in ((48_000, 1), (44_100, 2), (16_000, 1)):
        data = wav_bytes(6.5, rate, channels)
        samples, sr = A.decode(data)
        reference = W.file_windows(
            F.mfcc(A.resample(A.to_mono(samples), sr, params.sample_rate), params), params
        )
        served = predictor.prepare(data).windows
        assert served.shape == reference.shape
        assert np.max(np.abs(served - reference)) <= 1e-5 * np.max(np.abs(reference))


def test_an_accelerator_serves_the_model_once_it_matches_the_cpu() -> None:
    # "cpu" stands in for the GPU here: the same code path, device placement and parity check included
    bundle = _bundle()
    metrics = RecordingModelChoice()
    model = best_window_model(bundle, metrics, accelerator="cpu")
    assert isinstance(model, AcceleratorWindowModel)
    assert model.model is not bundle.model  # a copy moved to the device; the CPU reference stays put
    windows = np.random.default_rng(1).normal(0, 20, size=(300, 401, 40)).astype(np.float32)
    expected = TorchWindowModel(bundle.model).predict(windows)
    assert np.max(np.abs(model.predict(windows) - expected)) <= 1e-6  # 300 windows: two device batches
    assert metrics.fallbacks == []


def test_an_accelerator_that_drifts_from_the_cpu_is_refused_for_the_fast_path(monkeypatch, caplog) -> None:
    drifted = AcceleratorWindowModel.predict

    def off_by_1e_3(self, windows: np.ndarray) -> np.ndarray:
        return drifted(self, windows) + 1e-3  # what TF32 convolutions do to this model

    monkeypatch.setattr(AcceleratorWindowModel, "predict", off_by_1e_3)
    metrics = RecordingModelChoice()
    with caplog.at_level(logging.WARNING, logger="serving.inference"):
        model = best_window_model(_bundle(), metrics, accelerator="cpu")
    assert isinstance(model, FastWindowModelAdapter)
    assert metrics.fallbacks == ["cpu:ParityError"]
    assert any("not served on cpu" in r.getMessage() for r in caplog.records)


def test_without_an_accelerator_the_cpu_fast_path_serves() -> None:
    assert isinstance(best_window_model(_bundle()), FastWindowModelAdapter)
