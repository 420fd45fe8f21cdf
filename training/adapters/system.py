"""The real clock and the seeded random source."""

from __future__ import annotations

import time

from training.ports import Clock, RandomSource


class SystemClock(Clock):
    def now(self) -> float:
        return time.monotonic()


class SeededRandom(RandomSource):
    def __init__(self, seed: int) -> None:
        self._seed = int(seed)

    @property
    def seed(self) -> int:
        return self._seed
