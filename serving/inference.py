"""From upload bytes to the answer, through the same spira_core code training used.

predictor = Predictor.from_bundle(bundle, model_version="7")
answer = predictor.predict_bytes(data)          # offline (`spira predict`) and parity tests
prepared = predictor.prepare(data)              # the server: prepare, batch the model call, answer
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from serving.limits import UploadLimits, decode, read_header
from serving.metrics import ModelChoiceMetrics
from spira_core import audio as A
from spira_core import windows as W
from spira_core.fastpath import fast_mfcc
from spira_core.params import FeatureParams

PATIENT, CONTROL = "patient", "control"
log = logging.getLogger(__name__)


class WindowModel(ABC):
    """The model call: windows [N, T, F] float32 → probabilities [N]."""

    @abstractmethod
    def predict(self, windows: np.ndarray) -> np.ndarray: ...


class TorchWindowModel(WindowModel):
    def __init__(self, model, batch_size: int = 256) -> None:
        self.model = model
        self.batch_size = batch_size

    def predict(self, windows: np.ndarray) -> np.ndarray:
        from spira_core.model import predict_windows

        return predict_windows(self.model, windows, batch_size=self.batch_size)


class FastWindowModelAdapter(WindowModel):
    """The rewritten CPU model (spira_core.fastpath): same maths as SpiraConvV2 in eval mode, 2–7× faster.
    Built from the trained weights at load time and checked against the eager model before it serves."""

    def __init__(self, bundle, probe_windows: int = 8, seed: int = 0) -> None:
        from spira_core.fastpath import FastWindowModel

        self.fast = FastWindowModel.from_bundle(bundle)
        rng = np.random.default_rng(seed)
        probe = rng.normal(0.0, 20.0, size=(probe_windows, bundle.params.input_frames, bundle.params.n_mfcc))
        self.parity = self.fast.check_parity(probe.astype(np.float32))  # raises ParityError if off

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return self.fast.predict(windows)


def best_window_model(bundle, metrics: ModelChoiceMetrics | None = None) -> WindowModel:
    """The fast path when it reproduces the eager model within 1e-5, else the eager model itself.

    The eager model gives the same answers 2–7× slower, so falling back is not an error, but it must not be
    silent: capacity plans assume the fast path. It is logged as a warning and counted in `metrics`.
    """
    from spira_core.fastpath import ParityError

    try:
        return FastWindowModelAdapter(bundle)
    except (ParityError, ValueError, RuntimeError) as exc:
        reason = type(exc).__name__
        log.warning(
            "fast CPU model not used, serving the eager model (slower, same answers): %s: %s", reason, exc
        )
        if metrics is not None:
            metrics.model_fallback(reason)
        return TorchWindowModel(bundle.model)


@dataclass(frozen=True)
class Prepared:
    windows: np.ndarray  # [N, T, F]
    duration_s: float
    sample_rate_in: int
    channels: int


class Predictor:
    def __init__(
        self,
        params: FeatureParams,
        threshold: float,
        model_version: str,
        model: WindowModel,
        limits: UploadLimits | None = None,
    ) -> None:
        self.params = params
        self.threshold = float(threshold)
        self.model_version = str(model_version)
        self.model = model
        self.limits = limits or UploadLimits()

    @classmethod
    def from_bundle(
        cls,
        bundle,
        model_version: str,
        limits: UploadLimits | None = None,
        metrics: ModelChoiceMetrics | None = None,
    ) -> Predictor:
        return cls(bundle.params, bundle.threshold, model_version, best_window_model(bundle, metrics), limits)

    def prepare(self, data: bytes) -> Prepared:
        header = read_header(data, self.limits)
        samples, rate = decode(data, header, self.limits)
        # one channel: its own mean, without the 0.4 ms averaging pass (the values are identical)
        mono = samples[:, 0] if samples.shape[1] == 1 else A.to_mono(samples)
        wav = A.resample(mono, rate, self.params.sample_rate)
        # spira_core.features.mfcc's definition in less time; parity (1e-5 of scale) in tests/unit/fastpath
        feats = fast_mfcc(wav, self.params)
        return Prepared(W.file_windows(feats, self.params), samples.shape[0] / rate, rate, samples.shape[1])

    def answer(self, prepared: Prepared, window_probs: np.ndarray) -> dict[str, object]:
        probability = W.aggregate(window_probs)
        return {
            "probability": probability,
            "label": PATIENT if probability >= self.threshold else CONTROL,
            "threshold": self.threshold,
            "model_version": self.model_version,
            "windows": len(prepared.windows),
            "duration_s": round(prepared.duration_s, 4),
            "sample_rate_in": prepared.sample_rate_in,
        }

    def predict_bytes(self, data: bytes) -> dict[str, object]:
        prepared = self.prepare(data)
        return self.answer(prepared, self.model.predict(prepared.windows))
