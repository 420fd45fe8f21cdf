"""The CPU fast path: the same features and the same model function as the reference, with less work.

    from spira_core.fastpath import FastWindowModel, fast_mfcc
    model = FastWindowModel.from_bundle(bundle)       # built from the bundle's trained weights at load time
    model.check_parity(windows)                       # raises ParityError beyond 1e-5 of the eager module
    probs = model.predict(windows)                    # [N, T, F] float32 -> float64 [N]
    feats = fast_mfcc(wav, params)                    # same signature as spira_core.features.mfcc

Nothing here is imported by the reference modules; serving chooses the fast path at wiring time.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from spira_core.fastpath.mfcc import fast_mfcc
from spira_core.fastpath.model import FastSpiraConvV2, UnsupportedModuleError

PARITY_ATOL = 1e-5

__all__ = ["FastSpiraConvV2", "FastWindowModel", "ParityError", "UnsupportedModuleError", "fast_mfcc"]


class ParityError(AssertionError):
    """The fast model's probabilities differ from the eager module's by more than the tolerance."""


class FastWindowModel:
    """The serving port's shape (`predict(windows [N, T, F]) -> probabilities [N]`) over FastSpiraConvV2.

    Keeps the eager module it was built from, so parity can be checked against it at build or warm-up time.
    """

    def __init__(self, model: nn.Module, fast: FastSpiraConvV2 | None = None) -> None:
        self.reference = model
        self.fast = fast or FastSpiraConvV2.from_module(model)

    @classmethod
    def from_bundle(cls, bundle) -> FastWindowModel:
        return cls(bundle.model)

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return self.fast.predict(windows)

    def check_parity(self, windows: np.ndarray, atol: float = PARITY_ATOL) -> float:
        """Largest |fast - eager| over `windows`; raises ParityError above `atol` (absolute, on probabilities)."""
        from spira_core.model import predict_windows

        with torch.inference_mode():
            expected = predict_windows(self.reference, windows)
        worst = float(np.max(np.abs(self.predict(windows) - expected), initial=0.0))
        if not worst <= atol:  # also catches NaN
            raise ParityError(f"fast model differs from the eager reference by {worst:.3g} (> {atol:g})")
        return worst
