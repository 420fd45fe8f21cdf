"""The benchmarks' open loop: every send at its own scheduled time, none held back by a slow one before it."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from benchmarks.common import on_schedule


def test_every_index_is_sent_once_at_or_after_its_own_time_one_interval_apart() -> None:
    sent: dict[int, tuple[float, float]] = {}
    lock = threading.Lock()

    def send(i: int, scheduled: float) -> None:
        with lock:
            sent[i] = (scheduled, time.monotonic())

    on_schedule(12, rate=400.0, senders=3, send=send, lead_s=0.01)
    assert sorted(sent) == list(range(12))
    times = [sent[i][0] for i in range(12)]
    assert all(b - a == pytest.approx(1 / 400.0) for a, b in itertools.pairwise(times))
    assert all(at >= scheduled for scheduled, at in sent.values())


def test_a_send_that_has_not_returned_does_not_hold_back_the_next_one() -> None:
    second_sent = threading.Event()
    waited: list[bool] = []

    def send(i: int, scheduled: float) -> None:
        if i == 0:  # returns only once the next upload went out beside it (a closed loop would never)
            waited.append(second_sent.wait(timeout=10))
        else:
            second_sent.set()

    on_schedule(2, rate=1000.0, senders=2, send=send, lead_s=0.0)
    assert waited == [True]


def test_a_failing_send_is_raised_after_the_others_ran() -> None:
    ran: list[int] = []

    def send(i: int, scheduled: float) -> None:
        ran.append(i)
        if i == 1:
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        on_schedule(4, rate=1000.0, senders=1, send=send, lead_s=0.0)
    assert sorted(ran) == [0, 1, 2, 3]
