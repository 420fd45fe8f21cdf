"""How many request-body bytes the process holds at once: a budget shared by every upload, first come
first served, so memory is bounded by configuration (UploadLimits.max_inflight_bytes) however many
clients send at once.

    async with budget.hold(2 * content_length):    # waits up to wait_s, else Rejected 429 "busy"
        body = await read(...)                      # the body, its audio part, the decode: all inside

A request that waits does not read its body: the server stops reading its socket, so a waiting upload
costs the kernel's socket buffers, not a copy of its bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

from spira_core.uploads import Rejected


class BodyBudget:
    def __init__(self, capacity: int, wait_s: float, retry_after_s: int) -> None:
        self.capacity = capacity
        self.wait_s = wait_s
        self.retry_after_s = retry_after_s
        self.held = 0
        self.peak = 0  # the most bytes held at once: tests and benchmarks read it
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @contextlib.asynccontextmanager
    async def hold(self, n: int) -> AsyncIterator[None]:
        if (
            n > self.capacity
        ):  # could never be admitted: a configuration where a legal body exceeds the budget
            raise Rejected(
                413, "too_large", f"a request needing {n} bytes exceeds the budget of {self.capacity}"
            )
        await self._acquire(n)
        try:
            yield
        finally:
            self._release(n)

    async def _acquire(self, n: int) -> None:
        if not self._waiters and self.held + n <= self.capacity:
            self._take(n)
            return
        entry = (n, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            await asyncio.wait({entry[1]}, timeout=self.wait_s)
        except asyncio.CancelledError:  # the client went away while waiting
            self._abandon(entry)
            raise
        if not entry[1].done():
            self._abandon(entry)
            raise Rejected(
                429,
                "busy",
                f"the server holds as many uploads as its memory allows; retry in {self.retry_after_s} s",
                retry_after_s=self.retry_after_s,
            )

    def _take(self, n: int) -> None:
        self.held += n
        self.peak = max(self.peak, self.held)

    def _release(self, n: int) -> None:
        self.held -= n
        self._wake()

    def _abandon(self, entry: tuple[int, asyncio.Future[None]]) -> None:
        n, future = entry
        if future.done():  # granted just as it gave up
            self._release(n)
            return
        self._waiters.remove(entry)
        future.cancel()
        self._wake()  # it may have been the head that others queued behind

    def _wake(self) -> None:
        while self._waiters and self.held + self._waiters[0][0] <= self.capacity:
            n, future = self._waiters.popleft()
            self._take(n)
            future.set_result(None)
