"""CPU time of input monitoring per upload: the quality measures and the drift histogram, one thread.

    OMP_NUM_THREADS=1 taskset -c 1 python -m benchmarks.input_monitoring [--seconds 5.7] [--rate 48000]

A voice-like clip of the given length and rate; the reference from random MFCC-scaled frames (its values do
not change the cost: 40 coefficients × 10 bins). Reports `time.process_time` per call, so other load on the
machine does not inflate it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from spira_core import audio
from spira_core.features import mfcc
from spira_core.monitoring import DriftReference, input_quality, observe_input
from spira_core.params import FeatureParams


def _cpu_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats * 1000.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.7)
    parser.add_argument("--rate", type=int, default=48_000)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    t = np.arange(int(args.seconds * args.rate)) / args.rate
    samples = (0.3 * np.sin(2 * np.pi * 140 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    params = FeatureParams()
    frames = mfcc(audio.resample(samples, args.rate, params.sample_rate), params)
    reference = DriftReference.from_frames(rng.normal(0.0, 20.0, size=(20_000, params.n_mfcc)))
    rows = {
        "quality (duration, rate, clipping, silence, SNR)": lambda: input_quality(samples, args.rate),
        "drift histogram (40 coefficients)": lambda: reference.counts(frames),
        "both (observe_input)": lambda: observe_input(samples, args.rate, frames, reference),
    }
    print(f"{args.seconds:g} s at {args.rate} Hz, CPU ms per upload:")
    for name, fn in rows.items():
        print(f"  {name:<50} {_cpu_ms(fn, args.repeats):6.2f}")


if __name__ == "__main__":
    main()
