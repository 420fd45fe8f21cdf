"""The two servers `benchmarks.batching` compares: the same bundle (SPIRA_BENCH_BUNDLE), the same upload
path and the same model choice, batched two ways.

- `Ours`: serving's own wiring, the Starlette app over a ServingRuntime whose Predictor hands each
  upload's windows to `serving.batching.MicroBatcher`.
- `BentoBatching`: the same app and Predictor, except that the windows go to BentoML's adaptive batching:
  a `@bentoml.api(batchable=True)` endpoint of a second service (`Windows`, reached through
  `bentoml.depends`, so a second process), with the same batch size limit (its latency limit is another
  knob: see `Windows.predict`).

Served with `bentoml serve benchmarks.batching_services:<class>`; benchmark code only, never in the Bento.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import bentoml
import numpy as np

from serving.app import create_app
from serving.batching import Batching
from serving.inference import Predictor

BUNDLE_ENV = "SPIRA_BENCH_BUNDLE"
LIMITS = Batching()  # serving's defaults, what a pod without overrides in its secret runs


def _bundle():
    from spira_core.model import load_bundle

    return load_bundle(Path(os.environ[BUNDLE_ENV]))


def _runtime(predictor: Predictor):
    from serving.metrics import prometheus_metrics
    from serving.runtime import ServingRuntime
    from serving.wiring import warm_up

    warm_up(predictor)
    return ServingRuntime(predictor, prometheus_metrics())


_TRAFFIC = {"timeout": 30, "max_concurrency": 256}
app = create_app(lambda: bentoml.get_current_service().runtime)


@bentoml.asgi_app(app, path="/")
@bentoml.service(name="spira-ours", workers=1, traffic=_TRAFFIC)
class Ours:
    def __init__(self) -> None:
        self.runtime = _runtime(Predictor.from_bundle(_bundle(), "bench", batching=LIMITS))


@bentoml.service(name="spira-windows", workers=1, traffic=_TRAFFIC)
class Windows:
    """The model call behind BentoML's adaptive batching: windows [N, T, F] → probabilities [N]."""

    def __init__(self) -> None:
        from serving.inference import best_window_model

        bundle = _bundle()
        self.model = best_window_model(bundle)
        self.model.predict(np.zeros((1, bundle.params.input_frames, bundle.params.n_mfcc), np.float32))

    # BentoML's max_latency_ms is not a wait: it is the budget past which queued requests are refused with
    # 503 ("process is overloaded"); its wait adapts by itself. With our 10 ms it refused most requests at 4
    # clients, so it gets the request timeout, which is what ours never exceeds either (it never sheds).
    @bentoml.api(
        batchable=True,
        batch_dim=0,
        max_batch_size=LIMITS.max_batch_size,
        max_latency_ms=int(_TRAFFIC["timeout"] * 1000),
    )
    def predict(self, windows: np.ndarray) -> np.ndarray:
        return self.model.predict(windows)


class BentoBatchedPredictor(Predictor):
    """The Predictor with BentoML's adaptive batching in place of the MicroBatcher."""

    remote = None  # the Windows dependency, set by BentoBatching

    async def predict(self, data: bytes) -> dict[str, object]:
        async with self._decoding:
            prepared = await asyncio.to_thread(self.prepare, data)
        probs = await self.remote.to_async.predict(prepared.windows)
        return self._answer(prepared, np.asarray(probs))


@bentoml.asgi_app(app, path="/")
@bentoml.service(name="spira-bento-batching", workers=1, traffic=_TRAFFIC)
class BentoBatching:
    windows = bentoml.depends(Windows)

    def __init__(self) -> None:
        predictor = BentoBatchedPredictor.from_bundle(_bundle(), "bench", batching=LIMITS)
        predictor.remote = self.windows
        self.runtime = _runtime(predictor)
