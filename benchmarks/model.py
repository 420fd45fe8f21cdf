"""SpiraConvV2 per 4 s window against its GEMM floor, measured side by side in one run (issue 21).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 taskset -c 1 \
        .venv/bin/python -m benchmarks.model [--core 1] [--repeats 30] [--json OUT]

In one process pinned to one core with one torch thread, for batches of 1 / 2 / 8 / 64 windows:

- the GEMM floor: each layer of the network as ONE float32 GEMM of its im2col shape (conv k×C_in taps as
  the inner dimension, all output positions of the batch as columns; fc1 and fc2 as they are), timed
  through torch.mm (the BLAS the model uses); the sum over layers is the time the network's FLOPs take at
  the BLAS's rate on the network's own shapes, with no elementwise pass, copy or normalisation (a conv layer
  over a batch is timed both as one GEMM and as one GEMM per window, the faster counts); and the stricter
  floor the issue quotes: the network's FLOPs at the rate of a square 1024³ GEMM;
- the eager module (`predict_windows`), the fast path as it runs (`FastSpiraConvV2.predict`, the fused numba
  kernels of spira_core/fastpath/kernels.py) and the same fast path with its torch passes instead
  (`fused=False`), their ratios to the floor and their largest |Δp| against the eager module;
- where the fused fast path's time goes: its kernels and its stages timed by wrapping them (the later
  blocks' tap GEMMs are their stage minus their kernel; the head is the rest: fc1, fc2, input, chunks);
- the start cost of the kernels: `import numba`, and the first call's compile in a fresh process with an
  empty numba cache and again with the cache that run left.

Every figure is this thread's CPU time (time.thread_time): the MINIMUM over repeats (the machine is shared:
the minimum is the run least disturbed by others; the median is kept in --json), beside load1. The floor,
the eager module and both fast variants are measured in turn at each batch, so their ratios come from the
same minutes. The host and its SIMD flags are printed with them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks import common as C

BATCHES = (1, 2, 8, 64)


def host() -> dict[str, str]:
    """The processor's model name and the SIMD flags that decide the float32 GEMM rate."""
    name, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name in ("", platform.machine(), platform.processor()):
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile") if f in flags]
    return {"model": name, "simd": " ".join(simd) or "none of avx2/avx512"}


def layer_shapes(fast, batch: int) -> list[tuple[str, int, int, int]]:
    """(layer, M, K, N) of each layer as one GEMM: out[M, N] = W[M, K] · cols[K, N]."""
    shapes, frames, f = [], fast.input_frames, fast.n_features
    for i, blk in enumerate(fast.blocks, start=1):
        t_conv = blk.conv_frames(frames)
        shapes.append((f"conv{i}", blk.c_out, blk.c_in * blk.kernel, t_conv * f * batch))
        frames = blk.next_frames(frames)
    for i, (weight_t, _) in enumerate(fast.head, start=1):
        shapes.append((f"fc{i}", batch, int(weight_t.shape[0]), int(weight_t.shape[1])))
    return shapes


def cpu_times(fn, repeats: int, warmup: int = 2) -> np.ndarray:
    for _ in range(warmup):
        fn()
    cpus = []
    for _ in range(repeats):
        c = time.thread_time()
        fn()
        cpus.append(time.thread_time() - c)
    return np.asarray(cpus)


def cpu_best(fn, repeats: int, warmup: int = 2) -> float:
    """The minimum of this thread's CPU seconds over `repeats` calls."""
    return float(cpu_times(fn, repeats, warmup).min())


def gemm_floor(fast, batch: int, repeats: int) -> dict[str, object]:
    """Seconds of each layer as one GEMM at this batch (the faster of one GEMM over the whole batch and one
    per window times the batch: huge column counts leave the cache), GFLOP/s; the sum is the floor."""
    import torch

    layers, total, flops = {}, 0.0, 0
    per_window = dict((name, (m, k, n)) for name, m, k, n in layer_shapes(fast, 1))
    for name, m, k, n in layer_shapes(fast, batch):
        options = [(m, k, n, 1)]
        if name.startswith("conv") and batch > 1:
            options.append((*per_window[name], batch))
        best = None
        for mm, kk, nn_, times in options:
            a, b, out = torch.randn(mm, kk), torch.randn(kk, nn_), torch.empty(mm, nn_)
            s = times * cpu_best(lambda a=a, b=b, out=out: torch.mm(a, b, out=out), max(3, repeats // times))
            if best is None or s < best[0]:
                best = (s, f"[{mm}x{kk}]x[{kk}x{nn_}]" + (f" x{times}" if times > 1 else ""))
        s, shape = best
        layers[name] = {"shape": shape, "ms": s * 1e3, "gflops": 2 * m * k * n / s / 1e9}
        total += s
        flops += 2 * m * k * n
    return {"s": total, "mflop_per_window": flops / batch / 1e6, "layers": layers}


def peak_gflops(repeats: int, size: int = 1024) -> float:
    """The BLAS's float32 rate on a square GEMM (the issue's "GEMM floor" rate)."""
    import torch

    a, b, out = torch.randn(size, size), torch.randn(size, size), torch.empty(size, size)
    return 2 * size**3 / cpu_best(lambda: torch.mm(a, b, out=out), repeats) / 1e9


class _Timed:
    """Adds this thread's CPU seconds of each call of `fn` to totals[label(args)]."""

    def __init__(self, fn, label, totals) -> None:
        self.fn, self.label, self.totals = fn, label, totals

    def __call__(self, *args, **kwargs):
        c = time.thread_time()
        out = self.fn(*args, **kwargs)
        self.totals[self.label(args)] += time.thread_time() - c
        return out


class _TimedKernels:
    """The kernels module's two block kernels and block 1's statistics, timed; what the fast path calls."""

    def __init__(self, kernels, totals) -> None:
        self.first_block_affine = _Timed(
            kernels.first_block_affine,
            lambda a: "block 1: GroupNorm statistics, folded into the conv (kernel)",
            totals,
        )
        self.first_block = _Timed(
            kernels.first_block, lambda a: "block 1: conv + Mish + pool per L1 tile (kernel)", totals
        )
        self.norm_mish_pool = _Timed(kernels.norm_mish_pool, lambda a: f"nmp {a[0].shape[0]}", totals)
        self.mish_linear_sigmoid = kernels.mish_linear_sigmoid  # part of the head
        self.flatten_windows = kernels.flatten_windows  # part of the head


def stage_breakdown(fast, x: np.ndarray, repeats: int) -> dict[str, float]:
    """ms per window of each stage of the fused fast path (minimum over repeats of each stage's total per
    call), and the rest (the head: fc1, then Mish, fc2 and the sigmoid in one kernel; input checks, chunks,
    the flatten copy)."""
    fast.predict(x)
    kernels = fast.kernels
    best: dict[str, float] = {}
    totals: dict[str, float] = defaultdict(float)
    fast.kernels = _TimedKernels(kernels, totals)
    block_of = {blk.c_out: i for i, blk in enumerate(fast.blocks, start=1)}
    fast._later_block = _Timed(fast._later_block, lambda a: f"block {block_of[a[1][0].shape[0]]}", totals)
    try:
        for _ in range(repeats):
            totals.clear()
            c = time.thread_time()
            fast.predict(x)
            totals["total"] = time.thread_time() - c
            stages = dict(totals)
            for name in list(stages):  # a later block = its tap GEMMs + its kernel
                if name.startswith("block ") and name[6:].isdigit():
                    kernel = stages.pop(f"nmp {fast.blocks[int(name[6:]) - 1].c_out}")
                    stages[f"{name}: tap GEMMs (BLAS), bias"] = stages.pop(name) - kernel
                    stages[f"{name}: GroupNorm + Mish + pool (kernel)"] = kernel
            stages["head (fc1, fc2), input, chunking, flatten"] = stages["total"] - sum(
                v for k, v in stages.items() if k != "total"
            )
            for name, s in stages.items():
                best[name] = min(best.get(name, s), s)
    finally:
        fast.kernels = kernels
        del fast._later_block
    per = 1e3 / len(x)
    total = best.pop("total")
    out = {k: v * per for k, v in sorted(best.items())}
    out["total (its own minimum)"] = total * per
    return out


START_SCRIPT = """
import time, json, numpy as np
t0 = time.perf_counter()
import numba
t1 = time.perf_counter()
from benchmarks import common as C
from spira_core.fastpath import FastSpiraConvV2
fast = FastSpiraConvV2.from_module(C.eager_model())
x = np.zeros((2, fast.input_frames, fast.n_features), np.float32)
t2 = time.perf_counter()
fast.predict(x)
t3 = time.perf_counter()
fast.predict(x)
t4 = time.perf_counter()
print(json.dumps({"import_numba_s": t1 - t0, "first_call_s": t3 - t2, "second_call_s": t4 - t3}))
"""


def start_cost() -> dict[str, dict[str, float]]:
    """`import numba` and the first predict (compiles the kernels, or loads them from numba's cache) in a
    fresh process: with an empty cache directory, then with the one that run filled."""
    import os
    import subprocess
    import sys
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("empty numba cache", "cached"):
            run = subprocess.run(
                [sys.executable, "-c", START_SCRIPT], env=env, capture_output=True, text=True, check=True
            )
            out[label] = json.loads(run.stdout.strip().splitlines()[-1])
    return out


def run(repeats: int, core: int | None, start: bool = True) -> dict[str, object]:
    import torch

    from spira_core.fastpath import FastSpiraConvV2
    from spira_core.model import predict_windows
    from spira_core.params import FeatureParams

    chosen = C.pin_to_one_core(core)
    params = FeatureParams()
    model = C.eager_model()
    fast = FastSpiraConvV2.from_module(model)
    passes = FastSpiraConvV2.from_module(model, fused=False)
    if not fast.fused:
        raise SystemExit(
            "numba does not import here: the fast path runs its torch passes, nothing to compare"
        )
    rng = np.random.default_rng(0)
    out: dict[str, object] = {
        "host": host(),
        "core": chosen,
        "torch": torch.__version__,
        "blas": "MKL" if torch.backends.mkl.is_available() else "torch's BLAS",
        "load1_start": round(C.load1(), 2),
        "batches": {},
    }
    out["peak_gflops"] = peak_gflops(max(5, repeats // 2))
    for batch in BATCHES:
        x = rng.normal(0.0, 10.0, (batch, params.input_frames, params.n_mfcc)).astype(np.float32)
        reps = max(3, repeats * 8 // max(8, batch))
        with torch.inference_mode():
            expected = predict_windows(model, x)
            eager = cpu_best(lambda x=x: predict_windows(model, x), max(3, reps // 3), warmup=1)
        # the floor before and after the fast variants, the faster per layer: a floor no run beat
        floors = [gemm_floor(fast, batch, max(5, reps))]
        fused_t = cpu_times(lambda x=x: fast.predict(x), reps)
        passes_t = cpu_times(lambda x=x: passes.predict(x), reps)
        floors.append(gemm_floor(fast, batch, max(5, reps)))
        layers = {
            name: min((f["layers"][name] for f in floors), key=lambda v: v["ms"])
            for name in floors[0]["layers"]
        }
        floor_s = sum(v["ms"] for v in layers.values()) / 1e3
        per = 1e3 / batch
        peak_floor_ms = floors[0]["mflop_per_window"] / out["peak_gflops"]
        row = {
            "floor_ms": floor_s * per,
            "eager_ms": eager * per,
            "fast_ms": float(fused_t.min()) * per,
            "fast_median_ms": float(np.median(fused_t)) * per,
            "passes_ms": float(passes_t.min()) * per,
            "passes_median_ms": float(np.median(passes_t)) * per,
            "eager_x_floor": eager / floor_s,
            "fast_x_floor": float(fused_t.min()) / floor_s,
            "passes_x_floor": float(passes_t.min()) / floor_s,
            "peak_floor_ms": peak_floor_ms,
            "fast_x_peak_floor": float(fused_t.min()) * per / peak_floor_ms,
            "max_abs_diff": float(np.abs(fast.predict(x) - expected).max()),
            "passes_max_abs_diff": float(np.abs(passes.predict(x) - expected).max()),
            "mflop_per_window": floors[0]["mflop_per_window"],
            "floor_layers": layers,
            "load1": round(C.load1(), 2),
        }
        row["stages_ms"] = stage_breakdown(fast, x, reps)
        out["batches"][batch] = row
        print(
            f"batch {batch:>2}: floor {row['floor_ms']:.3f}  eager {row['eager_ms']:.2f}"
            f"  fast {row['fast_ms']:.3f} (torch passes {row['passes_ms']:.3f}) ms/window CPU"
            f"  → fast {row['fast_x_floor']:.2f}x floor (torch passes {row['passes_x_floor']:.2f}x),"
            f" max|Δp| {row['max_abs_diff']:.1e} / {row['passes_max_abs_diff']:.1e}  (load1 {row['load1']})",
            flush=True,
        )
    out["load1_end"] = round(C.load1(), 2)
    if start:
        out["start"] = start_cost()
    return out


def report(out: dict[str, object]) -> str:
    h = out["host"]
    lines = [
        f"host: {h['model']} ({h['simd']}), core {out['core']}, one thread, torch {out['torch']} ({out['blas']});"
        f" load1 {out['load1_start']} → {out['load1_end']}; square 1024³ GEMM {out['peak_gflops']:.1f} GFLOP/s",
    ]
    rows = [
        [
            str(b),
            f"{r['floor_ms']:.3f}",
            f"{r['eager_ms']:.2f}",
            f"{r['passes_ms']:.3f}",
            f"{r['fast_ms']:.3f}",
            f"{r['passes_x_floor']:.2f}x",
            f"**{r['fast_x_floor']:.2f}x**",
            f"{r['fast_x_peak_floor']:.2f}x",
            f"{r['max_abs_diff']:.1e} / {r['passes_max_abs_diff']:.1e}",
            f"{r['load1']}",
        ]
        for b, r in out["batches"].items()
    ]
    lines.append(
        C.table(
            "ms per 4 s window, thread CPU time (minimum over repeats); floor = each layer as one GEMM, same BLAS",
            [
                "batch",
                "GEMM floor",
                "eager",
                "fast, torch passes",
                "fast, fused kernels",
                "torch passes / floor",
                "fused / floor",
                "fused / square-GEMM floor",
                "max |Δp| fused / passes",
                "load1",
            ],
            rows,
        )
    )
    stages = [b for b, r in out["batches"].items() if "stages_ms" in r]
    names = list(out["batches"][stages[0]]["stages_ms"])
    lines.append(
        C.table(
            "fused fast path: where the time goes (ms per window, CPU, minimum per stage)",
            ["stage", *(f"batch {b}" for b in stages)],
            [[n, *(f"{out['batches'][b]['stages_ms'].get(n, 0.0):.3f}" for b in stages)] for n in names],
        )
    )
    for b, r in out["batches"].items():
        lines.append(
            f"floor at batch {b}: "
            + ", ".join(
                f"{k} {v['shape']} {v['ms']:.3f} ms {v['gflops']:.1f} GFLOP/s"
                for k, v in r["floor_layers"].items()
            )
        )
    if "start" in out:
        lines.append(
            "start cost (fresh process, wall s): "
            + "; ".join(
                f"{label}: import numba {v['import_numba_s']:.2f}, first predict {v['first_call_s']:.2f},"
                f" second {v['second_call_s'] * 1e3:.1f} ms"
                for label, v in out["start"].items()
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--core", type=int, default=None, help="core to pin to (default: the last)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    parser.add_argument("--no-start", action="store_true", help="skip the start-cost subprocesses")
    args = parser.parse_args(argv)
    out = run(args.repeats, args.core, start=not args.no_start)
    print(report(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
