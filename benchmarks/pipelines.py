"""The whole request, in-process: decode → resample → MFCC → windows → model → mean, two ways.

`reference_pipeline` is what a straightforward server runs (reference MFCC, eager module); `fast_pipeline`
is what the service runs: `serving.inference.Predictor` with the model `best_window_model` picks (the fast
path after its parity check), upload checks included. Both take WAV bytes and return the file's probability.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from spira_core import audio
from spira_core import features as F
from spira_core import windows as W
from spira_core.fastpath import FastWindowModel, fast_mfcc
from spira_core.model import ModelBundle, predict_windows
from spira_core.params import FeatureParams


def _windows(
    data: bytes, params: FeatureParams, mfcc: Callable[[np.ndarray, FeatureParams], np.ndarray]
) -> np.ndarray:
    samples, rate = audio.decode(data)
    wav = audio.resample(audio.to_mono(samples), rate, params.sample_rate)
    return W.file_windows(mfcc(wav, params), params)


def reference_pipeline(model, params: FeatureParams) -> Callable[[bytes], float]:
    def run(data: bytes) -> float:
        return W.aggregate(predict_windows(model, _windows(data, params, F.mfcc)))

    return run


def fast_pipeline(model, params: FeatureParams) -> Callable[[bytes], float]:
    from serving.inference import FastWindowModelAdapter, Predictor

    predictor = Predictor.from_bundle(ModelBundle(model, params), "bench")
    if not isinstance(predictor.model, FastWindowModelAdapter):
        raise RuntimeError("the service fell back to the eager model: the fast path is not being measured")

    def run(data: bytes) -> float:
        return float(predictor.predict_bytes(data)["probability"])

    return run


def stages(data: bytes, params: FeatureParams, model) -> dict[str, Callable[[], object]]:
    """Each stage of the request alone, on its real input, for the per-stage table."""
    samples, rate = audio.decode(data)
    mono = audio.to_mono(samples)
    wav = audio.resample(mono, rate, params.sample_rate)
    windows = W.file_windows(fast_mfcc(wav, params), params)
    fast = FastWindowModel(model)
    from serving.limits import UploadLimits, decode_upload

    limits = UploadLimits()
    return {
        "decode (libsndfile)": lambda: audio.decode(data),
        "header + decode, upload path (PCM16 WAV: numpy)": lambda: decode_upload(data, limits),
        "to mono (averaging pass; the service skips it for one channel)": lambda: audio.to_mono(samples),
        "resample 48k→16k (soxr)": lambda: audio.resample(mono, rate, params.sample_rate),
        "MFCC reference": lambda: F.mfcc(wav, params),
        "MFCC fast": lambda: fast_mfcc(wav, params),
        f"model eager, batch {len(windows)}": lambda: predict_windows(model, windows),
        f"model fast, batch {len(windows)}": lambda: fast.predict(windows),
    }
