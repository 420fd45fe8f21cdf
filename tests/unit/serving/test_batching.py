"""The micro-batcher shares forward passes between requests, and waits for company only when some can come."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from serving.batching import Batching, MicroBatcher
from tests.fakes.serving import FakeWindowModel


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
