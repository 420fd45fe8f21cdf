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
        self.parity = self.fast.check_parity(_probe(bundle, probe_windows, seed))  # raises ParityError if off

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return self.fast.predict(windows)


class AcceleratorWindowModel(TorchWindowModel):
    """The eager model on an accelerator (the GPU the model pod requests), in float32 without TF32.

    Checked at load time against the eager model on the CPU, like the fast path: a device whose answers
    drift beyond 1e-5 (a driver, a kernel, reduced precision) is refused rather than served."""

    def __init__(self, bundle, device: str, batch_size: int = 256, probe_windows: int = 8, seed: int = 0):
        import copy

        import torch

        from spira_core.fastpath import PARITY_ATOL, ParityError
        from spira_core.model import predict_windows

        # cuDNN convolutions default to TF32 on Ampere and later (~1e-3 relative): not the trained function
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        super().__init__(copy.deepcopy(bundle.model).eval().to(torch.device(device)), batch_size)
        probe = _probe(bundle, probe_windows, seed)
        worst = float(np.max(np.abs(self.predict(probe) - predict_windows(bundle.model, probe)), initial=0.0))
        if not worst <= PARITY_ATOL:  # also catches NaN
            raise ParityError(
                f"the model on {device} differs from the CPU by {worst:.3g} (> {PARITY_ATOL:g})"
            )
        self.parity = worst


def _probe(bundle, n: int, seed: int) -> np.ndarray:
    """Random windows at the scale of MFCCs, for the load-time parity checks."""
    rng = np.random.default_rng(seed)
    windows = rng.normal(0.0, 20.0, size=(n, bundle.params.input_frames, bundle.params.n_mfcc))
    return windows.astype(np.float32)


def available_accelerator() -> str | None:
    """ "cuda" when this process sees a GPU (the model pod on a GPU node, CUDA image), else None."""
    import torch

    return "cuda" if torch.cuda.is_available() else None


def best_window_model(
    bundle, metrics: ModelChoiceMetrics | None = None, accelerator: str | None = None
) -> WindowModel:
    """The accelerator when there is one and it reproduces the CPU within 1e-5; else the CPU fast path when
    it reproduces the eager model within 1e-5; else the eager model itself on the CPU.

    Every step down gives the same answers more slowly, so it is not an error, but it must not be silent:
    capacity plans assume the faster path. It is logged as a warning and counted in `metrics`.
    `accelerator` None: `available_accelerator()` decides.
    """
    from spira_core.fastpath import ParityError

    device = accelerator or available_accelerator()
    if device is not None:
        try:
            model = AcceleratorWindowModel(bundle, device)
            log.info("serving the model on %s (parity with the CPU: %.2g)", device, model.parity)
            return model
        except (ParityError, RuntimeError) as exc:
            reason = f"{device}:{type(exc).__name__}"
            log.warning("model not served on %s, serving it on the CPU: %s: %s", device, reason, exc)
            if metrics is not None:
                metrics.model_fallback(reason)
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
