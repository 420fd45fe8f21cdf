"""SpiraConvV2 per 4 s window against its GEMM floor, measured side by side in one run (issue 21).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 taskset -c 1 \
        .venv/bin/python -m benchmarks.model [--core 1] [--repeats 30] [--json OUT]

In one process pinned to one core with one torch thread, for batches of 1 / 8 / 64 windows:

- the GEMM floor: each layer of the network as ONE float32 GEMM of its im2col shape (conv k×C_in taps as
  the inner dimension, all output positions of the batch as columns; fc1 and fc2 as they are), timed
  through torch.mm (the BLAS the model uses); the sum over layers is the time the network's FLOPs take at
  the BLAS's rate on the network's own shapes, with no elementwise pass, copy or normalisation (a layer
  over a whole batch of 64 is timed both as one GEMM and as 64 per-window GEMMs, the faster counts); and
  the stricter floor the issue quotes: the network's FLOPs at the rate of a square 1024³ GEMM;
- the eager module (`predict_windows`), the fast path (`FastSpiraConvV2.predict`), their ratio to the floor
  and their largest |Δp| against the eager module;
- where the fast path's time goes: its stages timed by wrapping its methods, and torch's operator profile
  (aten ops, self CPU time, inflated by the profiler's own cost: read it as shares) of the same calls.

Figures are this thread's CPU time (time.thread_time), medians over repeats, beside load1: on a shared
machine CPU time moves less than wall time. The host and its SIMD flags are printed with them.
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

BATCHES = (1, 8, 64)


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


def cpu_median(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    cpus = []
    for _ in range(repeats):
        c = time.thread_time()
        fn()
        cpus.append(time.thread_time() - c)
    return float(np.median(cpus))


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
            s = times * cpu_median(
                lambda a=a, b=b, out=out: torch.mm(a, b, out=out), max(3, repeats // times)
            )
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
    return 2 * size**3 / cpu_median(lambda: torch.mm(a, b, out=out), repeats) / 1e9


class StageTimer:
    """Wraps the fast path's stage methods on one instance; CPU seconds per stage, summed over calls."""

    def __init__(self, fast) -> None:
        self.fast, self.totals = fast, defaultdict(float)
        self._originals = {}
        for name, label in (
            ("_first_block_affine", "block 1: GroupNorm statistics (analytic, float64)"),
            ("_first_block", "block 1: conv + Mish + pool (per window)"),
            ("_block", "blocks 2–4"),
        ):
            self._wrap(name, label)

    def _wrap(self, name: str, label: str) -> None:
        original = getattr(self.fast, name)
        self._originals[name] = original

        def timed(*args, **kwargs):
            c = time.thread_time()
            out = original(*args, **kwargs)
            key = label if name != "_block" else f"block {args[3] + 1}: conv GEMMs, GroupNorm, Mish, pool"
            self.totals[key] += time.thread_time() - c
            return out

        setattr(self.fast, name, timed)

    def restore(self) -> None:
        for name in self._originals:
            delattr(self.fast, name)


def stage_breakdown(fast, x: np.ndarray, repeats: int) -> dict[str, float]:
    """ms per window of each stage (nested stages excluded from their parents), and the rest."""
    fast.predict(x)
    timer = StageTimer(fast)
    c = time.thread_time()
    try:
        for _ in range(repeats):
            fast.predict(x)
    finally:
        timer.restore()
    total = time.thread_time() - c
    per = 1e3 / repeats / len(x)
    stages = dict(timer.totals)
    stats = stages.get("block 1: GroupNorm statistics (analytic, float64)", 0.0)
    stages["block 1: conv + Mish + pool (per window)"] -= stats
    out = {k: v * per for k, v in sorted(stages.items())}
    out["head (fc1, Mish, fc2, sigmoid), input, chunking, cat"] = (total - sum(stages.values())) * per
    out["total"] = total * per
    return out


def op_profile(fast, x: np.ndarray, repeats: int, top: int = 12) -> list[tuple[str, float, int]]:
    """torch's operator profile of the fast path: (op, self CPU ms per window, calls per window-batch)."""
    import torch

    fast.predict(x)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            fast.predict(x)
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [(e.key, e.self_cpu_time_total / 1e3 / repeats / len(x), e.count // repeats) for e in rows]


def run(repeats: int, core: int | None) -> dict[str, object]:
    import torch

    from spira_core.fastpath import FastSpiraConvV2
    from spira_core.model import predict_windows
    from spira_core.params import FeatureParams

    chosen = C.pin_to_one_core(core)
    params = FeatureParams()
    model = C.eager_model()
    fast = FastSpiraConvV2.from_module(model)
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
        floor = gemm_floor(fast, batch, max(5, reps))
        with torch.inference_mode():
            eager = cpu_median(lambda x=x: predict_windows(model, x), max(3, reps // 3), warmup=1)
            expected = predict_windows(model, x)
        ours = cpu_median(lambda x=x: fast.predict(x), reps)
        diff = float(np.abs(fast.predict(x) - expected).max())
        per = 1e3 / batch
        row = {
            "floor_ms": floor["s"] * per,
            "eager_ms": eager * per,
            "fast_ms": ours * per,
            "eager_x_floor": eager / floor["s"],
            "fast_x_floor": ours / floor["s"],
            "peak_floor_ms": floor["mflop_per_window"] / out["peak_gflops"],
            "fast_x_peak_floor": ours * per / (floor["mflop_per_window"] / out["peak_gflops"]),
            "max_abs_diff": diff,
            "mflop_per_window": floor["mflop_per_window"],
            "floor_layers": floor["layers"],
            "load1": round(C.load1(), 2),
        }
        out["batches"][batch] = row
        print(
            f"batch {batch:>2}: floor {row['floor_ms']:.3f}  eager {row['eager_ms']:.2f}"
            f"  fast {row['fast_ms']:.3f} ms/window CPU  → fast {row['fast_x_floor']:.2f}x floor"
            f" ({row['fast_x_peak_floor']:.2f}x the square-GEMM floor),"
            f" max|Δp| {diff:.1e}  (load1 {row['load1']})",
            flush=True,
        )
    for batch in (1, 64):
        x = rng.normal(0.0, 10.0, (batch, params.input_frames, params.n_mfcc)).astype(np.float32)
        reps = max(3, repeats * 8 // max(8, batch))
        out["batches"][batch]["stages_ms"] = stage_breakdown(fast, x, reps)
        out["batches"][batch]["ops_ms"] = op_profile(fast, x, reps)
    out["load1_end"] = round(C.load1(), 2)
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
            f"{r['fast_ms']:.3f}",
            f"{r['eager_x_floor']:.1f}x",
            f"{r['fast_x_floor']:.2f}x",
            f"{r['peak_floor_ms']:.3f}",
            f"{r['fast_x_peak_floor']:.2f}x",
            f"{r['max_abs_diff']:.1e}",
            f"{r['load1']}",
        ]
        for b, r in out["batches"].items()
    ]
    lines.append(
        C.table(
            "ms per 4 s window, thread CPU time (median); floor = each layer as one GEMM, same BLAS",
            [
                "batch",
                "GEMM floor",
                "eager",
                "fast",
                "eager / floor",
                "fast / floor",
                "square-GEMM floor",
                "fast / square floor",
                "max |Δp|",
                "load1",
            ],
            rows,
        )
    )
    for b, r in out["batches"].items():
        layers = r["floor_layers"]
        lines.append(
            f"floor at batch {b}: "
            + ", ".join(f"{k} {v['shape']} {v['gflops']:.1f} GFLOP/s" for k, v in layers.items())
        )
        if "stages_ms" in r:
            lines.append(
                C.table(
                    f"fast path at batch {b}: where the time goes (ms per window, CPU)",
                    ["stage", "ms"],
                    [[k, f"{v:.3f}"] for k, v in r["stages_ms"].items()],
                )
            )
            lines.append(
                C.table(
                    f"fast path at batch {b}: torch ops by self CPU time (numpy work is not listed)",
                    ["op", "ms per window", "calls per batch"],
                    [[k, f"{v:.3f}", str(n)] for k, v, n in r["ops_ms"]],
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
    args = parser.parse_args(argv)
    out = run(args.repeats, args.core)
    print(report(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
