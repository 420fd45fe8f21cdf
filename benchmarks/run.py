"""Inference benchmarks, printed as Markdown tables (`make bench` runs this).

    python -m benchmarks.run                 # model, request, side by side with the Flask baseline
    python -m benchmarks.run --quick         # fewer repeats (about a minute)
    python -m benchmarks.run --skip-flask    # no subprocess server

1. Model per window per core: eager SpiraConvV2 vs FastSpiraConvV2 at batch 1 / 8 / 64.
2. The whole request in-process for a 5.7 s 48 kHz PCM16 clip, per stage and end to end, per core.
3. Side by side, same clips: the eager model behind a one-process Flask app (benchmarks.flask_baseline)
   vs the fast path in-process, both on the same single core; requests/s and the ratio.
Only 127.0.0.1 traffic; every loop is bounded by repeats and a time budget.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

import numpy as np

from benchmarks import common as C


def model_table(repeats: int) -> str:
    from spira_core.fastpath import FastSpiraConvV2
    from spira_core.model import predict_windows
    from spira_core.params import FeatureParams

    params = FeatureParams()
    model = C.eager_model()
    fast = FastSpiraConvV2.from_module(model)
    rng = np.random.default_rng(0)
    rows = []
    for batch in (1, 8, 64):
        x = rng.normal(0.0, 10.0, (batch, params.input_frames, params.n_mfcc)).astype(np.float32)
        reps = max(3, repeats // max(1, batch // 8))
        eager = C.measure(lambda: predict_windows(model, x), max(3, reps // 4), warmup=1).per(batch)  # noqa: B023
        ours = C.measure(lambda: fast.predict(x), reps).per(batch)  # noqa: B023
        diff = float(np.abs(fast.predict(x) - predict_windows(model, x)).max())
        rows.append(
            [
                str(batch),
                C.ms(eager.median),
                f"{C.ms(eager.p10)}–{C.ms(eager.p90)}",
                C.ms(ours.median),
                f"{C.ms(ours.p10)}–{C.ms(ours.p90)}",
                C.ms(ours.cpu_median),
                f"{eager.median / ours.median:.1f}x",
                f"{diff:.1e}",
                f"{ours.load:.1f}",
            ]
        )
    return C.table(
        "Model: ms per 4 s window, one core (median, p10–p90 wall; CPU = thread CPU time)",
        [
            "batch",
            "eager",
            "eager p10–p90",
            "fast",
            "fast p10–p90",
            "fast CPU",
            "speed-up",
            "max |Δp|",
            "load1",
        ],
        rows,
    )


def request_table(repeats: int) -> str:
    from benchmarks.pipelines import fast_pipeline, reference_pipeline, stages
    from spira_core.params import FeatureParams

    params = FeatureParams()
    data = C.clips(1)[0]
    model = C.eager_model()
    rows = []
    for name, fn in stages(data, params, model).items():
        t = C.measure(fn, repeats)
        rows.append(
            [name, C.ms(t.median), f"{C.ms(t.p10)}–{C.ms(t.p90)}", C.ms(t.cpu_median), f"{t.load:.1f}"]
        )
    for name, run in (
        ("whole request, reference (eager)", reference_pipeline(model, params)),
        ("whole request, fast path (serving Predictor)", fast_pipeline(model, params)),
    ):
        t = C.measure(lambda: run(data), repeats)  # noqa: B023
        rows.append(
            [name, C.ms(t.median), f"{C.ms(t.p10)}–{C.ms(t.p90)}", C.ms(t.cpu_median), f"{t.load:.1f}"]
        )
    return C.table(
        f"Request in-process: {C.CLIP_SECONDS} s {C.CLIP_RATE} Hz PCM16 clip (2 windows), one core, ms",
        ["stage", "median", "p10–p90", "CPU", "load1"],
        rows,
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Flask baseline exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the Flask baseline did not become ready in time")


def side_by_side_table(n_requests: int, core: int) -> str:
    import requests

    from benchmarks.pipelines import fast_pipeline
    from spira_core.params import FeatureParams

    data = C.clips(4)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.flask_baseline", "--port", str(port), "--core", str(core)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    own = os.sched_getaffinity(0)
    others = set(range(os.cpu_count() or 1)) - {core}
    try:
        _wait_ready(url, server)
        if others:  # the client must not compete with the server for its core
            os.sched_setaffinity(0, others)
        session = requests.Session()

        def call(i: int) -> float:
            r = session.post(
                url + "/predict", files={"audio": ("clip.wav", data[i % len(data)], "audio/wav")}, timeout=60
            )
            r.raise_for_status()
            return float(r.json()["probability"])

        for i in range(2):
            call(i)
        lat, start = [], time.perf_counter()
        flask_probs = []
        for i in range(n_requests):
            t = time.perf_counter()
            flask_probs.append(call(i))
            lat.append(time.perf_counter() - t)
        flask_rps = n_requests / (time.perf_counter() - start)
        flask_lat = lat
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        os.sched_setaffinity(0, own)
    run = fast_pipeline(C.eager_model(), FeatureParams())
    for i in range(2):
        run(data[i])
    n_ours = n_requests * 5
    lat, start = [], time.perf_counter()
    ours_probs = []
    for i in range(n_ours):
        t = time.perf_counter()
        ours_probs.append(run(data[i % len(data)]))
        lat.append(time.perf_counter() - t)
    ours_rps = n_ours / (time.perf_counter() - start)
    agree = max(abs(a - b) for a, b in zip(flask_probs, ours_probs[:n_requests], strict=True))
    rows = [
        [
            "eager in one-process Flask (HTTP)",
            str(n_requests),
            f"{flask_rps:.1f}",
            C.ms(float(np.median(flask_lat))),
            C.ms(float(np.percentile(flask_lat, 95))),
            "1.0x",
        ],
        [
            "fast path in-process (serving Predictor)",
            str(n_ours),
            f"{ours_rps:.1f}",
            C.ms(float(np.median(lat))),
            C.ms(float(np.percentile(lat, 95))),
            f"{ours_rps / flask_rps:.1f}x",
        ],
    ]
    title = (
        f"Side by side, same {len(data)} clips, one core each, sequential (load1 {C.load1():.1f}; "
        f"max |Δ probability| {agree:.1e})"
    )
    return C.table(title, ["server", "requests", "req/s", "p50 ms", "p95 ms", "ratio"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SPIRA inference benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--skip-flask", action="store_true", help="no side-by-side run")
    parser.add_argument("--core", type=int, default=None, help="the core to pin to (default: the last one)")
    args = parser.parse_args(argv)
    core = C.pin_to_one_core(args.core)
    repeats = 10 if args.quick else 40
    import torch

    print(
        f"# SPIRA inference benchmarks\n\nhost {platform.node()}, {os.cpu_count()} cores, pinned to core {core}, "
        f"torch {torch.__version__} (1 thread), numpy {np.__version__}, load1 at start {C.load1():.1f}"
    )
    print(model_table(repeats), flush=True)
    print(request_table(repeats), flush=True)
    if not args.skip_flask:
        print(side_by_side_table(8 if args.quick else 30, core), flush=True)


if __name__ == "__main__":
    main()
