"""From upload bytes to the answer, through the same spira_core code training used.

predictor = Predictor.from_bundle(bundle, model_version="7")
answer = await predictor.predict(data)          # the server: decode once, windows → the batcher → answer
answer = predictor.predict_bytes(data)          # offline (`spira predict`), warm-up, parity tests
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from serving.batching import Batching, MicroBatcher
from serving.metrics import ModelChoiceMetrics
from spira_core import audio as A
from spira_core import windows as W
from spira_core.cpus import usable_cpus
from spira_core.fastpath import fast_mfcc
from spira_core.monitoring import DriftReference, InputObservation, observe_input
from spira_core.params import FeatureParams
from spira_core.uploads import Rejected, UploadLimits, decode_upload
from spira_core.vector_math import start_vector_math

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
    from spira_core.fastpath import ParityError, UnsupportedModuleError

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
    except UnsupportedModuleError as exc:  # refused at build time, naming the layer it does not reproduce
        reason, why = type(exc).__name__, f"the fast CPU path does not reproduce this model: {exc}"
    except (ParityError, ValueError, RuntimeError) as exc:
        reason, why = type(exc).__name__, f"the fast CPU path failed its check: {type(exc).__name__}: {exc}"
    log.warning("serving the eager model on the CPU (slower, same answers): %s", why)
    if metrics is not None:
        metrics.model_fallback(reason)
    return TorchWindowModel(bundle.model)


@dataclass(frozen=True)
class Prepared:
    """An upload decoded once and cut into the model's windows."""

    windows: np.ndarray  # [N, T, F]
    duration_s: float
    sample_rate_in: int
    channels: int
    # the upload's quality measures and MFCC histogram, for input monitoring (serving/monitoring.py)
    observation: InputObservation | None = None


class Predictor:
    """Upload bytes → answer: decode once, features, windows, probabilities (from the batcher, which shares
    forward passes between concurrent requests, or from the model itself offline), label."""

    def __init__(
        self,
        params: FeatureParams,
        threshold: float,
        model_version: str,
        model: WindowModel,
        limits: UploadLimits | None = None,
        batching: Batching | Callable[[], Batching] | None = None,
        decoders: int | None = None,
        drift_reference: DriftReference | None = None,
    ) -> None:
        self.params = params
        self.drift_reference = drift_reference
        self.threshold = float(threshold)
        self.model_version = str(model_version)
        self.model = model
        self.limits = limits or UploadLimits()
        # decodes, features and forward passes run in one thread per usable core, in arrival order: more
        # threads than cores would take turns on them, evicting each other's buffers (10.58 against 9.45 ms
        # of server CPU per request on one core, side by side; docs/performance.md)
        self.compute = ThreadPoolExecutor(usable_cpus(), thread_name_prefix="spira-compute")
        self.batcher = MicroBatcher(model, batching or Batching(), self.compute)
        # how many uploads may be decoded (or wait for a compute thread, body in hand) at once: their memory
        self._decoding = asyncio.Semaphore(decoders or self.limits.max_concurrent_decodes)

    @classmethod
    def from_bundle(
        cls,
        bundle,
        model_version: str,
        limits: UploadLimits | None = None,
        metrics: ModelChoiceMetrics | None = None,
        batching: Batching | Callable[[], Batching] | None = None,
    ) -> Predictor:
        # before the model's load-time checks run torch, in whatever threads this process has
        start_vector_math()
        model = best_window_model(bundle, metrics)
        return cls(
            bundle.params,
            bundle.threshold,
            model_version,
            model,
            limits,
            batching,
            drift_reference=bundle.drift_reference,
        )

    @property
    def max_upload_bytes(self) -> int:
        return self.limits.max_bytes

    def describe(self) -> dict[str, object]:
        """What serves: for GET /info."""
        return {
            "model_version": self.model_version,
            "threshold": self.threshold,
            "feature_params": self.params.to_dict(),
        }

    async def predict(self, data: bytes) -> dict[str, object]:
        """The server's path. A Rejected upload propagates (the HTTP layer answers 4xx and counts it).
        Marked as coming to the batcher while it decodes, so a batch waits for its windows."""
        return (await self.predict_observed(data))[0]

    async def predict_observed(self, data: bytes) -> tuple[dict[str, object], InputObservation | None]:
        """`predict`, with the upload's input measures for monitoring."""
        with self.batcher.coming():
            async with self._decoding:
                prepared = await asyncio.get_running_loop().run_in_executor(self.compute, self.prepare, data)
        return self._answer(prepared, await self.batcher.predict(prepared.windows)), prepared.observation

    def predict_bytes(self, data: bytes) -> dict[str, object]:
        """The same answer without batching, in the calling thread."""
        prepared = self.prepare(data)
        return self._answer(prepared, self.model.predict(prepared.windows))

    def predict_prepared(self, prepared: list[Prepared]) -> list[dict[str, object]]:
        """The answers of uploads already prepared, their windows in one model call, in the calling thread
        (the queue worker's batch across messages)."""
        if not prepared:
            return []
        probs = self.model.predict(np.concatenate([p.windows for p in prepared]))
        bounds = np.cumsum([0, *(len(p.windows) for p in prepared)])
        return [
            self._answer(p, probs[a:b]) for p, a, b in zip(prepared, bounds[:-1], bounds[1:], strict=True)
        ]

    def prepare(self, data: bytes) -> Prepared:
        """Decode once (upload rules checked), mono, resample, MFCC, windows."""
        upload = decode_upload(data, self.limits)
        samples = upload.samples
        # one channel: its own mean, without the 0.4 ms averaging pass (the values are identical)
        mono = samples[:, 0] if upload.channels == 1 else A.to_mono(samples)
        wav = A.resample(mono, upload.sample_rate, self.params.sample_rate)
        # spira_core.features.mfcc's definition in less time; parity (1e-5 of scale) in tests/unit/fastpath
        feats = fast_mfcc(wav, self.params)
        # finite samples of extreme amplitude (a FLOAT WAV of 1e30) overflow the power spectrum: the model
        # would answer NaN, which no JSON answer can carry
        if not np.isfinite(feats).all():
            raise Rejected(
                422,
                "non_finite_features",
                "the audio's features are not finite (its amplitude is out of range)",
            )
        windows = W.file_windows(feats, self.params)
        observation = observe_input(samples, upload.sample_rate, feats, self.drift_reference)
        return Prepared(windows, upload.duration_s, upload.sample_rate, upload.channels, observation)

    def _answer(self, prepared: Prepared, window_probs: np.ndarray) -> dict[str, object]:
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
