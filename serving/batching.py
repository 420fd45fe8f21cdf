"""Adaptive batching of the model call: concurrent requests share forward passes.

Requests put their windows on a queue; one worker takes whatever has arrived within `max_latency_ms` (up
to `max_batch_size` windows), runs one forward pass in a thread (the Predictor's compute threads, shared
with the uploads' decodes), and hands each request its slice. Under
heavy load batches fill up and the per-window cost drops. A batch waits for company only while another
request is on its way (between upload and queue, marked with `coming()`): under light load nothing can
join, and waiting would add `max_latency_ms` to every request for nothing (10 ms of a ~35 ms round trip
on one core, measured with benchmarks.served).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the Predictor (serving.inference) owns the batcher; the batcher only calls the model
    from serving.inference import WindowModel


@dataclass(frozen=True)
class Batching:
    """How long a batch may wait for company, and how many windows it may hold.

    The defaults here are serving's; an environment overrides them in its serving secret (keys in SETTINGS,
    declared per environment in infra/environments.yaml and written by `spira secrets seed`), read from the
    secret's cache at each batch: an operator's `kv patch` applies within the cache TTL, with no restart and
    no environment variable."""

    max_batch_size: int = 64  # windows
    max_latency_ms: float = 10.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> Batching:
        """The secret's values where it has them, the defaults elsewhere; a bad value keeps the default."""
        default = cls()
        try:
            size = int(settings.get("max_batch_windows", default.max_batch_size))
            latency = float(settings.get("max_latency_ms", default.max_latency_ms))
        except (TypeError, ValueError):
            return default
        return cls(
            size if size > 0 else default.max_batch_size, latency if latency >= 0 else default.max_latency_ms
        )


# the keys of the serving secret that tune batching
SETTINGS = ("max_batch_windows", "max_latency_ms")


@dataclass
class _Job:
    windows: np.ndarray
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    def __init__(
        self,
        model: WindowModel,
        batching: Batching | Callable[[], Batching] = Batching(),
        executor: Executor | None = None,
    ) -> None:
        self.model = model
        self.executor = executor  # where the forward pass runs; None: asyncio's default threads
        # fixed settings, or a cheap provider read at each batch (the serving secret's cache)
        self.settings: Callable[[], Batching] = batching if callable(batching) else (lambda: batching)
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task | None = None
        self._coming = 0
        self.batches = 0
        self.windows = 0

    @contextlib.contextmanager
    def coming(self) -> Iterator[None]:
        """Marks a request that will call `predict` once its windows are ready (decoding, features)."""
        self._coming += 1
        try:
            yield
        finally:
            self._coming -= 1

    async def predict(self, windows: np.ndarray) -> np.ndarray:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(windows, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            first = await self._queue.get()
            settings = self.settings()
            jobs, size = [first], len(first.windows)
            deadline = asyncio.get_running_loop().time() + settings.max_latency_ms / 1000.0
            # nothing queued and nobody on the way: no one can join this batch
            while size < settings.max_batch_size and (self._coming > 0 or not self._queue.empty()):
                timeout = deadline - asyncio.get_running_loop().time()
                if timeout <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
                jobs.append(job)
                size += len(job.windows)
            await self._execute(jobs)

    async def _execute(self, jobs: list[_Job]) -> None:
        batch = np.concatenate([j.windows for j in jobs], axis=0)
        try:
            probs = await asyncio.get_running_loop().run_in_executor(self.executor, self.model.predict, batch)
        except Exception as exc:  # the model failed: every waiting request learns why
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(exc)
            return
        self.batches += 1
        self.windows += len(batch)
        start = 0
        for j in jobs:
            n = len(j.windows)
            if not j.future.done():
                j.future.set_result(probs[start : start + n])
            start += n

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
