"""BentoML's adaptive batching against serving's MicroBatcher, side by side in one run, on the same cores.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.batching \
        --server-cores 1 --client-cores 0 --rounds 2 --seconds 15

Both servers are real `bentoml serve` processes of `benchmarks.batching_services` (the same bundle, upload
path, model choice, batch size 64 windows and 10 ms latency limit), pinned to --server-cores with one
BLAS/OpenMP thread; the load generator runs on --client-cores. The variants alternate (ours, BentoML's,
ours, BentoML's, ...), so a neighbour's load on a shared machine falls on both. Each step is a closed loop
of N clients posting 5.7 s 48 kHz PCM16 clips back to back: requests/s, latency p50/p95, the servers' CPU
seconds per request (their whole process trees, from /proc), load1. The verdict compares the medians over
rounds: BentoML's is adopted when its throughput and p95 are within 10% of ours at every client count, and
none of its requests failed (req/s counts answered requests only).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks import common as C
from benchmarks.served import ONE_THREAD, _post, tree_usage

VARIANTS = {
    "ours": "benchmarks.batching_services:Ours",
    "bentoml": "benchmarks.batching_services:BentoBatching",
}
WITHIN = 0.10


def closed_loop(url: str, clips: list[bytes], clients: int, seconds: float) -> dict[str, float]:
    """`clients` threads posting back to back for `seconds`: req/s, latency p50/p95 (ms), errors."""
    import requests

    stop = time.monotonic() + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients

    def client(i: int) -> None:
        session = requests.Session()
        k = i
        while time.monotonic() < stop:
            t0 = time.monotonic()
            try:
                _post(session, url, clips[k % len(clips)])
                latencies[i].append(time.monotonic() - t0)
            except Exception:  # counted and reported; the step goes on
                errors[i] += 1
            k += 1

    start = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    lat = np.array([x for per in latencies for x in per]) * 1e3
    return {
        "rps": len(lat) / wall,
        "p50": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p95": float(np.percentile(lat, 95)) if lat.size else float("nan"),
        "errors": float(sum(errors)),
    }


def run_variant(
    name: str,
    work: Path,
    env: dict[str, str],
    clips: list[bytes],
    clients: list[int],
    seconds: float,
    cores: tuple[set[int], set[int]],
    warmup: float,
) -> list[dict[str, float | str]]:
    """Start the variant's server on the server cores (it inherits them), measure from the client cores."""
    from spira.local_server import start_local_server

    server_cores, client_cores = cores
    os.sched_setaffinity(0, server_cores)
    server = start_local_server(env, work / f"run-{name}", name=f"batching-{name}", service=VARIANTS[name])
    os.sched_setaffinity(0, client_cores)
    try:
        # warm up at the highest load: first batches, first dependency calls, BentoML's latency model
        closed_loop(server.url, clips, max(clients), warmup)
        rows = []
        for n in clients:
            cpu0, t0 = tree_usage(server.pid)[0], time.monotonic()
            step = closed_loop(server.url, clips, n, seconds)
            cpu = tree_usage(server.pid)[0] - cpu0
            done = step["rps"] * (time.monotonic() - t0)
            rows.append(
                {
                    "variant": name,
                    "clients": n,
                    **step,
                    "cpu_ms": 1e3 * cpu / max(done, 1),
                    "load1": C.load1(),
                }
            )
        return rows
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/spira-batching"))
    parser.add_argument("--server-cores", default="1", help="cores both servers are pinned to, e.g. 1")
    parser.add_argument("--client-cores", default="0", help="cores the load generator runs on")
    parser.add_argument("--clients", default="4,16")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each load step")
    parser.add_argument("--rounds", type=int, default=2, help="ABAB rounds")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before measuring")
    parser.add_argument("--clips", type=int, default=4)
    args = parser.parse_args(argv)
    from spira_core.model import ModelBundle, save_bundle
    from spira_core.params import FeatureParams

    clients = [int(c) for c in args.clients.split(",")]
    server_cores = {int(c) for c in args.server_cores.split(",")}
    args.work.mkdir(parents=True, exist_ok=True)
    bundle = save_bundle(ModelBundle(C.eager_model(), FeatureParams()), args.work / "bundle")
    env = {
        **os.environ,
        **ONE_THREAD,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "BENTOML_HOME": str(args.work / "bentoml"),
        "SPIRA_BENCH_BUNDLE": str(bundle),
    }
    env.pop("VAULT_ADDR", None)  # no archive: the model path only
    clips = C.clips(args.clips)
    host = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in host.splitlines() if "Model name" in line), "?")
    print(f"# Batching: MicroBatcher vs BentoML adaptive batching; host {model}, {os.cpu_count()} cores")
    print(
        f"servers on cores {sorted(server_cores)}, clients on {args.client_cores}; load1 at start {C.load1():.2f}"
    )
    cores = (server_cores, {int(c) for c in args.client_cores.split(",")})
    rows: list[dict] = []
    for r in range(args.rounds):
        for name in VARIANTS:
            for row in run_variant(name, args.work, env, clips, clients, args.seconds, cores, args.warmup):
                rows.append({"round": r + 1, **row})
                print(
                    f"round {r + 1} {name:8s} clients {row['clients']:3d}: {row['rps']:6.1f} req/s, "
                    f"p50 {row['p50']:6.0f} ms, p95 {row['p95']:6.0f} ms, errors {row['errors']:.0f}, "
                    f"server CPU {row['cpu_ms']:.1f} ms/req, load1 {row['load1']:.2f}",
                    flush=True,
                )
    print(verdict(rows, clients))


def verdict(rows: list[dict], clients: list[int]) -> str:
    lines = [
        "",
        "| clients | ours req/s | BentoML req/s | ours p95 ms | BentoML p95 ms | BentoML/ours req/s | p95 |",
        "|---|---|---|---|---|---|---|",
    ]
    adopt = True
    for n in clients:
        med = {
            v: {
                k: statistics.median(r[k] for r in rows if r["variant"] == v and r["clients"] == n)
                for k in ("rps", "p95")
            }
            for v in VARIANTS
        }
        ratio_rps = med["bentoml"]["rps"] / med["ours"]["rps"]
        ratio_p95 = med["bentoml"]["p95"] / med["ours"]["p95"]
        failed = sum(r["errors"] for r in rows if r["variant"] == "bentoml" and r["clients"] == n)
        adopt &= ratio_rps >= 1 - WITHIN and ratio_p95 <= 1 + WITHIN and failed == 0
        lines.append(
            f"| {n} | {med['ours']['rps']:.1f} | {med['bentoml']['rps']:.1f} | {med['ours']['p95']:.0f} | "
            f"{med['bentoml']['p95']:.0f} | {ratio_rps:.2f} | {ratio_p95:.2f} |"
        )
    lines.append(
        "verdict: "
        + (
            "BentoML's batching is within 10%: adopt it"
            if adopt
            else "BentoML's batching is not within 10%: keep ours"
        )
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
