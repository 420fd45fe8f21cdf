"""Scoring validation windows during training: the CPU fast path when it can compute this model, else the
eager module.

The fast path computes the eager module's function (within 1e-5 on probabilities, tests/unit/fastpath) at
~1/8 of its CPU time; scoring every validation window eagerly took as long as an epoch's training. It is
derived from the module's layers and refuses a layer it does not know; training then goes on, eagerly,
rather than depending on it. This is the one training module that imports the fast path (a layer contract
in pyproject.toml).
"""

from __future__ import annotations

import logging

import numpy as np
from torch import nn

from spira_core.fastpath.model import FastSpiraConvV2, UnsupportedModuleError
from spira_core.model import predict_windows
from training.fast_layers import reference_layers

log = logging.getLogger(__name__)


def fast_model(model: nn.Module) -> FastSpiraConvV2 | None:
    """The CPU fast path for `model` (read with torch's own layers in place of training's fast twins), or
    None when it does not reproduce the module."""
    try:
        return FastSpiraConvV2.from_module(reference_layers(model))
    except UnsupportedModuleError as exc:
        log.info("validation scored by the eager model: the fast path does not apply (%s)", exc)
        return None


def score_windows(model: nn.Module, windows: np.ndarray) -> np.ndarray:
    """Eval-mode probabilities float64 [N] for windows [N, W, F]."""
    fast = fast_model(model)
    return fast.predict(windows) if fast is not None else predict_windows(model, windows)
