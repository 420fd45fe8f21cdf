"""Shared pieces of the inference benchmarks: one-core pinning, timing, clips, models and table output.

Per-core figures pin the process to one core (os.sched_setaffinity) with torch.set_num_threads(1). Each
figure is the median over repeats, with its spread (p10–p90) and the 1-minute load average when taken:
on a shared machine, read figures next to their load.
"""

from __future__ import annotations

import io
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CLIP_SECONDS = 5.7
CLIP_RATE = 48_000


def pin_to_one_core(core: int | None = None) -> int:
    """Run this process on one core, with one torch thread; returns the core."""
    import torch

    cores = sorted(os.sched_getaffinity(0))
    chosen = cores[-1] if core is None else core
    os.sched_setaffinity(0, {chosen})
    torch.set_num_threads(1)
    return chosen


def on_schedule(
    count: int,
    rate: float,
    senders: int,
    send: Callable[[int, float], None],
    clock: Callable[[], float] = time.monotonic,
    lead_s: float = 0.2,
) -> None:
    """An open loop: `send(i, scheduled)` for i in range(count), each from a pool of `senders` threads at
    its scheduled time (`lead_s` from now, then one every 1 / rate seconds on `clock`). A send that takes
    longer than the interval does not push the next ones back, so latency measured from `scheduled` shows
    the queueing a closed loop hides. An exception in `send` is raised here, after every send has run."""
    from concurrent.futures import ThreadPoolExecutor

    start = clock() + lead_s

    def paced(i: int) -> None:
        scheduled = start + i / rate
        delay = scheduled - clock()
        if delay > 0:
            time.sleep(delay)
        send(i, scheduled)

    with ThreadPoolExecutor(max(1, senders)) as pool:
        futures = [pool.submit(paced, i) for i in range(count)]
    for future in futures:
        future.result()


def load1() -> float:
    return os.getloadavg()[0]


@dataclass(frozen=True)
class Timing:
    """Seconds per call: median and p10/p90 of wall time, median of this thread's CPU time."""

    median: float
    p10: float
    p90: float
    cpu_median: float
    n: int
    load: float

    def per(self, items: int) -> Timing:
        return Timing(
            self.median / items,
            self.p10 / items,
            self.p90 / items,
            self.cpu_median / items,
            self.n,
            self.load,
        )


def measure(fn: Callable[[], object], repeats: int, warmup: int = 2, budget_s: float = 20.0) -> Timing:
    """Time `fn` `repeats` times (fewer if `budget_s` runs out, at least 3)."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    start = time.perf_counter()
    while len(walls) < repeats and (len(walls) < 3 or time.perf_counter() - start < budget_s):
        t, c = time.perf_counter(), time.thread_time()
        fn()
        cpus.append(time.thread_time() - c)
        walls.append(time.perf_counter() - t)
    q = np.percentile(walls, [10, 90])
    return Timing(
        statistics.median(walls), float(q[0]), float(q[1]), statistics.median(cpus), len(walls), load1()
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([f"\n### {title}\n", line(header), sep, *(line(r) for r in rows)])


def voice_clip(seconds: float = CLIP_SECONDS, rate: int = CLIP_RATE, seed: int = 0) -> np.ndarray:
    """A voice-like mono clip (jittered harmonics, formant-ish tilt, breath noise), float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = rng.uniform(90, 220) * (1 + 0.05 * np.sin(2 * np.pi * 4 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(h * phase) * np.exp(-h / 8) for h in range(1, 30))
    wav = voiced + 0.02 * rng.standard_normal(t.size)
    return (0.5 * wav / np.abs(wav).max()).astype(np.float32)


def wav_bytes(wav: np.ndarray, rate: int = CLIP_RATE) -> bytes:
    """PCM16 WAV bytes, as phones record SPIRA's tasks."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wav, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def clips(n: int = 4) -> list[bytes]:
    return [wav_bytes(voice_clip(seed=i)) for i in range(n)]


def eager_model(seed: int = 0):
    """A seeded SpiraConvV2 in eval mode (speed does not depend on the weights' values)."""
    import torch

    from spira_core.model import build_model
    from spira_core.params import FeatureParams

    torch.manual_seed(seed)
    return build_model(FeatureParams()).eval()
