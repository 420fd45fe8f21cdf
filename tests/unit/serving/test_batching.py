"""The micro-batcher shares forward passes between requests, and waits for company only when some can come;
the forward passes and the uploads' decodes run on the Predictor's compute threads, one per usable core."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from serving.batching import Batching, MicroBatcher
from serving.inference import Predictor
from spira_core.cpus import usable_cpus
from spira_core.params import FeatureParams
from tests.fakes.serving import FakeWindowModel, wav_bytes


class ModelThatNotesItsThread(FakeWindowModel):
    def __init__(self) -> None:
        super().__init__(0.5)
        self.threads: list[str] = []

    def predict(self, windows: np.ndarray) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        return super().predict(windows)


def _windows(n: int) -> np.ndarray:
    return np.zeros((n, 4, 3), dtype=np.float32)


def test_a_lone_request_is_not_held_for_the_batching_delay() -> None:
    async def run() -> float:
        batcher = MicroBatcher(FakeWindowModel(0.7), Batching(max_batch_size=64, max_latency_ms=2000))
        started = time.monotonic()
        probs = await batcher.predict(_windows(2))
        elapsed = time.monotonic() - started
        await batcher.close()
        assert probs.shape == (2,)
        return elapsed

    assert asyncio.run(run()) < 1.0  # far below the 2 s it would wait for company


def test_a_batch_waits_for_a_request_that_is_on_its_way_and_shares_its_forward_pass() -> None:
    model = FakeWindowModel(0.7)

    async def late_request(batcher: MicroBatcher) -> np.ndarray:
        with batcher.coming():
            await asyncio.sleep(0.05)  # decoding and features
        return await batcher.predict(_windows(3))

    async def run() -> tuple[np.ndarray, np.ndarray]:
        batcher = MicroBatcher(model, Batching(max_batch_size=64, max_latency_ms=2000))
        late = asyncio.create_task(late_request(batcher))
        await asyncio.sleep(0)  # the late request has announced itself
        first = await batcher.predict(_windows(2))
        second = await late
        await batcher.close()
        return first, second

    first, second = asyncio.run(run())
    assert (first.shape, second.shape) == ((2,), (3,))
    assert model.calls == [5]  # one forward pass for both


def test_the_wait_for_company_is_bounded_by_the_batching_delay() -> None:
    model = FakeWindowModel(0.7)

    async def run() -> float:
        batcher = MicroBatcher(model, Batching(max_batch_size=64, max_latency_ms=50))
        with batcher.coming():  # announced, but never arrives in time
            started = time.monotonic()
            await batcher.predict(_windows(1))
            elapsed = time.monotonic() - started
        await batcher.close()
        return elapsed

    assert 0.04 < asyncio.run(run()) < 1.0
    assert model.calls == [1]


def test_batching_settings_come_from_the_serving_secret_and_a_bad_value_keeps_the_default() -> None:
    assert Batching.from_settings({}) == Batching()
    assert Batching.from_settings({"max_batch_windows": "8", "max_latency_ms": "2.5"}) == Batching(8, 2.5)
    assert Batching.from_settings({"max_batch_windows": "many"}) == Batching()
    assert Batching.from_settings({"max_batch_windows": "0"}).max_batch_size == Batching().max_batch_size


def test_an_operator_change_to_the_serving_secret_reaches_the_next_batch_without_a_restart() -> None:
    from serving.wiring import batching_settings
    from spira_core.vault import CachedSecret
    from tests.fakes.vault import FakeSecretReader, ManualClock

    reader, clock = FakeSecretReader({"max_batch_windows": "64"}), ManualClock()
    secret = CachedSecret(reader, ttl_s=30, grace_s=300, clock=clock)
    settings = batching_settings(secret)
    assert settings() == Batching()  # nothing read yet: the defaults, and no call to Vault
    assert reader.reads == 0
    secret.get()
    model = FakeWindowModel(0.7)

    async def three_requests(batcher: MicroBatcher) -> None:
        async def one() -> np.ndarray:
            with batcher.coming():
                await asyncio.sleep(0.01)
            return await batcher.predict(_windows(2))

        await asyncio.gather(one(), one(), one())

    async def run() -> None:
        batcher = MicroBatcher(model, settings)
        await three_requests(batcher)  # 64 windows allowed: one shared forward pass
        reader.rotate(max_batch_windows="2")  # the operator's `kv patch`
        clock.advance(31)
        secret.get()  # the runtime's refresher re-reads after the TTL
        await three_requests(batcher)  # 2 windows at most: one pass per request
        await batcher.close()

    asyncio.run(run())
    assert model.calls == [6, 2, 2, 2]


def test_the_forward_pass_runs_on_the_executor_the_batcher_was_given() -> None:
    model = ModelThatNotesItsThread()
    compute = ThreadPoolExecutor(1, thread_name_prefix="probe-compute")

    async def run() -> None:
        batcher = MicroBatcher(model, Batching(max_batch_size=64, max_latency_ms=1), compute)
        await batcher.predict(_windows(2))
        await batcher.close()

    asyncio.run(run())
    compute.shutdown()
    assert model.threads == ["probe-compute_0"]


def test_a_predictors_decodes_and_forward_passes_share_one_compute_thread_per_usable_core() -> None:
    model = ModelThatNotesItsThread()
    prepared_in: list[str] = []

    class NotingPredictor(Predictor):
        def prepare(self, data: bytes):
            prepared_in.append(threading.current_thread().name)
            return super().prepare(data)

    predictor = NotingPredictor(FeatureParams(), 0.5, "7", model, None, Batching(64, 1.0))

    async def run() -> None:
        await asyncio.gather(*(predictor.predict(wav_bytes(seconds=4.5, seed=i)) for i in range(6)))
        await predictor.batcher.close()

    asyncio.run(run())
    predictor.compute.shutdown()
    assert len(prepared_in) == 6 and model.threads
    threads = set(prepared_in + model.threads)
    assert all(name.startswith("spira-compute_") for name in threads)
    assert len(threads) <= usable_cpus()
