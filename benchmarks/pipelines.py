"""The whole request, in-process: decode → resample → MFCC → windows → model → mean, two ways.

`reference_pipeline` is what a straightforward server runs (reference MFCC, eager module); `fast_pipeline`
is the fast path (fast_mfcc, FastSpiraConvV2). Both take WAV bytes and return the file's probability.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from spira_core import audio
from spira_core import features as F
from spira_core import windows as W
from spira_core.fastpath import FastWindowModel, fast_mfcc
from spira_core.model import predict_windows
from spira_core.params import FeatureParams


def _windows(data: bytes, params: FeatureParams, mfcc: Callable[[np.ndarray, FeatureParams], np.ndarray]
             ) -> np.ndarray:
    samples, rate = audio.decode(data)
    wav = audio.resample(audio.to_mono(samples), rate, params.sample_rate)
    return W.file_windows(mfcc(wav, params), params)


def reference_pipeline(model, params: FeatureParams) -> Callable[[bytes], float]:
    def run(data: bytes) -> float:
        return W.aggregate(predict_windows(model, _windows(data, params, F.mfcc)))

    return run


def fast_pipeline(model, params: FeatureParams) -> Callable[[bytes], float]:
    fast = FastWindowModel(model)

    def run(data: bytes) -> float:
        return W.aggregate(fast.predict(_windows(data, params, fast_mfcc)))

    return run


def stages(data: bytes, params: FeatureParams) -> dict[str, Callable[[], object]]:
    """Each stage of the fast request alone, on its real input, for the per-stage table."""
    samples, rate = audio.decode(data)
    mono = audio.to_mono(samples)
    wav = audio.resample(mono, rate, params.sample_rate)
    return {
        "decode": lambda: audio.decode(data),
        "resample 48k→16k (soxr)": lambda: audio.resample(mono, rate, params.sample_rate),
        "MFCC reference": lambda: F.mfcc(wav, params),
        "MFCC fast": lambda: fast_mfcc(wav, params),
    }
