"""Model throughput on one accelerator at batch sizes 1–256, and the batch size the server should use.

    python -m benchmarks.gpu                       # CUDA, random weights (speed does not depend on them)
    python -m benchmarks.gpu --bundle DIR/bundle   # a trained bundle
    python -m benchmarks.gpu --device cpu --batches 1,4 --repeats 3    # the same code on the CPU (a check)

Each figure runs `serving.inference.AcceleratorWindowModel.predict`, the call the server makes: windows from
host memory, copied to the device, the eager model in float32 (TF32 off), probabilities copied back. The
model is the one the server would refuse if it drifted from the CPU by more than 1e-5 (checked at load,
printed). The recommended batch is the smallest whose windows/s reach 90% of the best: larger batches add
latency (a request waits for its batch) for under 10% more throughput. It is the MicroBatcher's
max_batch_size for that GPU: declare it for the environment in infra/environments.yaml (`serving_settings`,
key `max_batch_windows`); `spira secrets seed` writes it into the serving secret, which the pods read (the
default, 64 windows, is serving/batching.py's, measured on CPU).
"""

from __future__ import annotations

import argparse
import platform
import sys

import numpy as np

from benchmarks import common as C

DEFAULT_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
ENOUGH = 0.9  # of the best throughput


def recommend(windows_per_s: dict[int, float], enough: float = ENOUGH) -> int:
    """The smallest batch whose throughput reaches `enough` of the best."""
    best = max(windows_per_s.values())
    return min(b for b, rate in windows_per_s.items() if rate >= enough * best)


def _bundle(path: str | None):
    from spira_core.model import ModelBundle, load_bundle
    from spira_core.params import FeatureParams

    return load_bundle(path) if path else ModelBundle(C.eager_model(), FeatureParams(), 0.5, {})


def _synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def table(device: str, batches: tuple[int, ...], repeats: int, bundle_path: str | None) -> tuple[str, int]:
    import torch

    from serving.inference import AcceleratorWindowModel

    bundle = _bundle(bundle_path)
    model = AcceleratorWindowModel(bundle, device, batch_size=max(batches))
    p = bundle.params
    rng = np.random.default_rng(0)
    cuda = device.startswith("cuda")
    name = torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine()
    rows, rates = [], {}
    for b in batches:
        windows = rng.normal(0.0, 20.0, size=(b, p.input_frames, p.n_mfcc)).astype(np.float32)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        t = C.measure(lambda w=windows: model.predict(w), repeats, warmup=3)
        _synchronize(device)
        peak = f"{torch.cuda.max_memory_allocated(device) / 2**20:,.0f}" if cuda else "–"
        rates[b] = b / t.median
        rows.append(
            [
                str(b),
                f"{C.ms(t.median)} ({C.ms(t.p10)}–{C.ms(t.p90)})",
                C.ms(t.median / b),
                f"{rates[b]:,.0f}",
                peak,
            ]
        )
    best = recommend(rates)
    text = C.table(
        f"Device: {device} ({name}), torch {torch.__version__}, parity with the CPU {model.parity:.2g}",
        ["batch", "ms per call (p10–p90)", "ms per window", "windows/s", "peak device MiB"],
        rows,
    )
    return (
        f"{text}\n\nRecommended max batch: {best} window{'s' if best > 1 else ''} (the smallest batch within {1 - ENOUGH:.0%} of "
        f"the best throughput, {rates[best]:,.0f} against {max(rates.values()):,.0f} windows/s)"
    ), best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SPIRA model throughput per accelerator and batch size")
    parser.add_argument("--device", default="cuda", help="torch device (default: cuda)")
    parser.add_argument(
        "--batches",
        default=",".join(map(str, DEFAULT_BATCHES)),
        help="comma-separated batch sizes (default: 1 to 256)",
    )
    parser.add_argument("--repeats", type=int, default=30, help="calls timed per batch size")
    parser.add_argument("--bundle", default=None, help="a trained bundle directory (default: random weights)")
    args = parser.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            f"no CUDA device visible to torch {torch.__version__}: run on a GPU machine with the CUDA build, "
            "or pass --device cpu to check the benchmark itself",
            file=sys.stderr,
        )
        return 2
    try:
        batches = tuple(sorted({int(b) for b in args.batches.split(",")}))
    except ValueError:
        parser.error(f"--batches: comma-separated integers, got {args.batches!r}")
    if not batches or batches[0] < 1:
        parser.error("--batches: sizes of at least 1")
    text, _ = table(args.device, batches, args.repeats, args.bundle)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
