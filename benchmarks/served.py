"""Served throughput and latency against a running server, compared with the in-process fast path.

    bentoml serve serving.service:Spira --port 3000 &          # (the lead's service, pinned as wanted)
    python -m benchmarks.served --url http://127.0.0.1:3000 --cores 0,1

1. Maximum throughput: closed loop, 1/2/4/8/16 concurrent clients for --seconds each; the best req/s.
2. Latency at half that load: open loop (requests scheduled at a fixed rate, latency counted from the
   scheduled time, so a slow server cannot hide queueing), p50/p95/p99.
3. In-process throughput on the same cores: one pinned process per core runs the fast path on the same
   clips; the served/in-process ratio is the issue's "served ≥ 0.8× in-process" figure.
POSTs the WAV in the multipart field "audio" to /predict. Loopback only unless --allow-remote.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import threading
import time
import urllib.parse

import numpy as np

from benchmarks import common as C


def _post(session, url: str, data: bytes) -> None:
    r = session.post(url + "/predict", files={"audio": ("clip.wav", data, "audio/wav")}, timeout=60)
    r.raise_for_status()


def closed_loop(url: str, clips: list[bytes], concurrency: int, seconds: float) -> tuple[float, int]:
    """req/s with `concurrency` clients each sending back to back for `seconds`; and the error count."""
    import requests

    stop = time.monotonic() + seconds
    done = [0] * concurrency
    errors = [0] * concurrency

    def client(i: int) -> None:
        session = requests.Session()
        k = i
        while time.monotonic() < stop:
            try:
                _post(session, url, clips[k % len(clips)])
                done[i] += 1
            except Exception:  # any failure is counted and reported; the load step goes on
                errors[i] += 1
            k += 1

    start = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - start), sum(errors)


def open_loop(url: str, clips: list[bytes], rate: float, seconds: float, max_clients: int = 64) -> dict[str, float]:
    """Latency percentiles (ms) at a fixed arrival rate; latency runs from each request's scheduled time."""
    import requests

    n = max(1, int(rate * seconds))
    schedule = time.monotonic() + 0.2 + np.arange(n) / rate
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    next_index = [0]

    def client() -> None:
        session = requests.Session()
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= n:
                return
            delay = schedule[i] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                _post(session, url, clips[i % len(clips)])
                with lock:
                    latencies.append(time.monotonic() - schedule[i])
            except Exception:  # any failure is counted and reported; the load step goes on
                with lock:
                    errors[0] += 1

    threads = [threading.Thread(target=client) for _ in range(max_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = np.array(latencies) * 1e3 if latencies else np.array([np.nan])
    return {"rate": rate, "n": float(len(latencies)), "errors": float(errors[0]), "p50": float(np.percentile(lat, 50)),
            "p95": float(np.percentile(lat, 95)), "p99": float(np.percentile(lat, 99))}


def _in_process_worker(core: int, seconds: float, n_clips: int, out) -> None:
    from benchmarks.pipelines import fast_pipeline
    from spira_core.params import FeatureParams

    C.pin_to_one_core(core)
    clips = C.clips(n_clips)
    run = fast_pipeline(C.eager_model(), FeatureParams())
    for data in clips[:2]:
        run(data)
    done, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        run(clips[done % len(clips)])
        done += 1
    out.put(done / (time.monotonic() - start))


def in_process_throughput(cores: list[int], seconds: float, n_clips: int) -> float:
    """req/s of the fast path with one pinned process per core, all at once."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_in_process_worker, args=(c, seconds, n_clips, q)) for c in cores]
    for p in procs:
        p.start()
    rates = [q.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    return float(sum(rates))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="base URL of the server, e.g. http://127.0.0.1:3000")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load step")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--concurrency", default="1,2,4,8,16")
    parser.add_argument("--cores", default="", help="cores the server runs on, for the in-process comparison "
                        "(e.g. 0,1); empty: skip it")
    parser.add_argument("--allow-remote", action="store_true")
    args = parser.parse_args(argv)
    host = urllib.parse.urlparse(args.url).hostname
    if host not in {"127.0.0.1", "localhost", "::1"} and not args.allow_remote:
        parser.error(f"{host} is not loopback; pass --allow-remote to benchmark it")
    url = args.url.rstrip("/")
    clips = C.clips(args.clips)
    rows, best = [], (0.0, 0)
    for conc in (int(c) for c in args.concurrency.split(",")):
        rps, errors = closed_loop(url, clips, conc, args.seconds)
        rows.append([str(conc), f"{rps:.1f}", str(errors), f"{C.load1():.1f}"])
        best = max(best, (rps, conc))
    print(C.table(f"Served maximum throughput ({args.seconds:.0f} s per step, {C.CLIP_SECONDS} s 48 kHz clips)",
                  ["clients", "req/s", "errors", "load1"], rows))
    half = open_loop(url, clips, best[0] / 2, args.seconds * 2)
    print(C.table("Served latency at half the maximum load (open loop)",
                  ["req/s offered", "answered", "errors", "p50 ms", "p95 ms", "p99 ms"],
                  [[f"{half['rate']:.1f}", f"{half['n']:.0f}", f"{half['errors']:.0f}", f"{half['p50']:.1f}",
                    f"{half['p95']:.1f}", f"{half['p99']:.1f}"]]))
    if args.cores:
        cores = [int(c) for c in args.cores.split(",")]
        inproc = in_process_throughput(cores, args.seconds, args.clips)
        print(C.table(f"Served vs in-process on cores {args.cores}", ["served req/s", "in-process req/s", "ratio"],
                      [[f"{best[0]:.1f}", f"{inproc:.1f}", f"{best[0] / inproc:.2f}x"]]))


if __name__ == "__main__":
    main()
