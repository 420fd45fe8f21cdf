"""Served throughput and latency of a real `bentoml serve`, against the same Predictor in-process.

    python -m benchmarks.served --work /tmp/spira-served --server-core 1 --client-cores 0
    python -m benchmarks.served --url http://127.0.0.1:3000            # a server you started yourself

Without --url it brings its own server: the first run starts a private local stack (OpenBao, SeaweedFS,
MLflow on free ports under WORK/stack), makes a small synthetic dataset, trains the fast preset for a few
epochs through the real CLI, imports the registered version with `spira bento import` into WORK/bentoml
and stops the stack; later runs with the same --work reuse that import. Then `bentoml serve` of
serving.service:Spira starts pinned to --server-core (without VAULT_ADDR: no archive, the model path only)
and is measured:

1. Cold start to /readyz and RSS (the server's process tree).
2. Maximum throughput: closed loop, 1/2/4/8/16 concurrent clients for --seconds each; the best req/s, and
   the server's CPU seconds per request (utime+stime of its process tree, read from /proc).
3. Latency at half that load: open loop (requests scheduled at a fixed rate, latency counted from the
   scheduled time, so a slow server cannot hide queueing), p50/p95/p99.
4. In-process on the same core: the same bundle through `serving.inference.Predictor.predict_bytes`, one
   pinned process; the served/in-process ratio is the issue's "served ≥ 0.8× in-process" figure, given
   both in wall req/s and in requests per CPU second (the latter holds up on a shared machine).
The client runs on --client-cores; where that is the server's core too, the server's share is lower.
POSTs the WAV in the multipart field "audio" to /predict (with --url and a client's VAULT_ADDR and VAULT_ROLE
in the environment, with that client's token). Loopback only unless --allow-remote.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import shutil
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

from benchmarks import common as C

MODEL_NAME = "spira-respiratory"
SYNTH_N, SYNTH_SEED, TRAIN_EPOCHS = 32, 7, 3  # a real, small training run: speed does not depend on accuracy
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# With --url against a server with Vault: the client's token (VAULT_ADDR + VAULT_ROLE of a client role, e.g.
# the gate's; spira_core/predict_credential.py). The server this benchmark starts has no Vault: no token.
_credential = None


def _auth() -> dict[str, str]:
    return _credential.headers() if _credential is not None else {}


def _post(session, url: str, data: bytes) -> None:
    r = session.post(
        url + "/predict", files={"audio": ("clip.wav", data, "audio/wav")}, headers=_auth(), timeout=60
    )
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


def open_loop(
    url: str, clips: list[bytes], rate: float, seconds: float, max_clients: int = 64
) -> dict[str, float]:
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
    return {
        "rate": rate,
        "n": float(len(latencies)),
        "errors": float(errors[0]),
        "p50": float(np.percentile(lat, 50)),
        "p95": float(np.percentile(lat, 95)),
        "p99": float(np.percentile(lat, 99)),
    }


# -- the server's own resources, read from /proc ------------------------------------------------------------
def tree_usage(root: int) -> tuple[float, float]:
    """(CPU seconds, RSS MB) of process `root` and its live descendants (BentoML's worker runs in a
    process group of its own, so the group of `bentoml serve` would miss it)."""
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    ticks, pages, todo = 0, 0, [root]
    while todo:
        pid = todo.pop()
        if pid not in stats:
            continue
        ticks += int(stats[pid][11]) + int(stats[pid][12])  # utime, stime
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, IndexError):
            pages += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        todo.extend(children.get(pid, []))
    return ticks / os.sysconf("SC_CLK_TCK"), pages * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- a real trained model, imported into a private BentoML home ----------------------------------------------
def prepare_model(work: Path, say=print) -> Path:
    """WORK/model.lock.json naming a trained version imported into WORK/bentoml (trained on first use)."""
    from spira.local_server import REPO, import_pinned, run_spira
    from spira.stack import LocalStack, StackConfig
    from spira.stack.private import free_stack_ports

    pin = work / "model.lock.json"
    if pin.exists():
        say(f"reusing the model imported in {work}")
        return pin
    stack = LocalStack(StackConfig.load(work / "stack", **free_stack_ports()), with_registry=False)
    try:
        info = stack.up(say=say)
        os.environ.update(info.mlflow_operator_env())  # the model import below acts as the operator
        env = {**os.environ, **info.service_env("training"), "PYTHONPATH": str(REPO)}
        started = time.monotonic()
        run_spira(
            ["data", "synth", "--out", str(work / "data"), "--n", str(SYNTH_N), "--seed", str(SYNTH_SEED)],
            env,
            600,
        )
        run_spira(
            [
                "pipeline",
                "run",
                "--data",
                str(work / "data" / "dataset.csv"),
                "--noise",
                str(work / "data" / "noise.csv"),
                "--preset",
                "fast",
                "--epochs",
                str(TRAIN_EPOCHS),
                "--no-progress",
                "--json-out",
                str(work / "outcome.json"),
            ],
            env,
            1800,
        )
        import json

        version = str(json.loads((work / "outcome.json").read_text())["publish"]["version"])
        say(f"trained and registered version {version} in {time.monotonic() - started:.0f} s")
        import_pinned(info.mlflow_uri, version, pin, work / "bentoml")
    finally:
        stack.down()
    return pin


def bundle_dir(work: Path) -> Path:
    from serving.pin import ModelPin

    tag = ModelPin.read(work / "model.lock.json").bento_tag
    return work / "bentoml" / "models" / MODEL_NAME / tag.split(":", 1)[1] / "bundle"


# -- in-process, same bundle, same core ---------------------------------------------------------------------
def _in_process_worker(core: int, bundle: str, seconds: float, n_clips: int, out) -> None:
    from serving.inference import FastWindowModelAdapter, Predictor
    from spira_core.model import load_bundle

    C.pin_to_one_core(core)
    clips = C.clips(n_clips)
    predictor = Predictor.from_bundle(load_bundle(Path(bundle)), "bench")
    if not isinstance(predictor.model, FastWindowModelAdapter):
        raise RuntimeError("the fast path fell back to the eager model")
    for data in clips:
        predictor.predict_bytes(data)
    done, start, cpu = 0, time.monotonic(), time.thread_time()
    while time.monotonic() - start < seconds:
        predictor.predict_bytes(clips[done % len(clips)])
        done += 1
    out.put((done / (time.monotonic() - start), done / (time.thread_time() - cpu)))


def in_process(core: int, bundle: Path, seconds: float, n_clips: int) -> tuple[float, float]:
    """(req/s wall, req per CPU second) of Predictor.predict_bytes in one process pinned to `core`."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_in_process_worker, args=(core, str(bundle), seconds, n_clips, q))
    proc.start()
    result = q.get(timeout=seconds + 180)
    proc.join(timeout=30)
    return result


# -- the measurement ----------------------------------------------------------------------------------------
def measure_served(
    url: str, clips: list[bytes], concurrency: list[int], seconds: float, server_pid: int | None
) -> tuple[list[list[str]], float, float | None, dict[str, float]]:
    rows, best, best_cpu_rate = [], (0.0, 0), None
    for conc in concurrency:
        cpu0 = tree_usage(server_pid)[0] if server_pid else None
        t0 = time.monotonic()
        rps, errors = closed_loop(url, clips, conc, seconds)
        per_cpu = None
        if server_pid:
            cpu_s = tree_usage(server_pid)[0] - cpu0
            per_cpu = rps * (time.monotonic() - t0) / cpu_s if cpu_s > 0 else None
        rows.append(
            [
                str(conc),
                f"{rps:.1f}",
                "-" if per_cpu is None else f"{per_cpu:.1f}",
                str(errors),
                f"{C.load1():.1f}",
            ]
        )
        if (rps, conc) > best:
            best, best_cpu_rate = (rps, conc), per_cpu
    half = open_loop(url, clips, best[0] / 2, seconds * 2)
    return rows, best[0], best_cpu_rate, half


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="", help="an already running server; empty: start one (see --work)")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/spira-served"),
        help="where the trained model is kept between runs",
    )
    parser.add_argument("--server-core", type=int, default=1)
    parser.add_argument("--client-cores", default="0", help="cores the load generator runs on, e.g. 0")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each load step")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--concurrency", default="1,2,4,8,16")
    parser.add_argument("--allow-remote", action="store_true")
    args = parser.parse_args(argv)
    concurrency = [int(c) for c in args.concurrency.split(",")]
    client_cores = {int(c) for c in args.client_cores.split(",")}
    clips = C.clips(args.clips)
    server = None
    header = [f"# Served benchmark, {C.CLIP_SECONDS} s 48 kHz PCM16 clips, load1 at start {C.load1():.1f}"]
    if args.url:
        host = urllib.parse.urlparse(args.url).hostname
        if host not in {"127.0.0.1", "localhost", "::1"} and not args.allow_remote:
            parser.error(f"{host} is not loopback; pass --allow-remote to benchmark it")
        url, server_pid = args.url.rstrip("/"), None
        if os.environ.get("VAULT_ADDR") and os.environ.get("VAULT_ROLE"):
            global _credential
            from spira_core.predict_credential import PredictCredential

            _credential = PredictCredential.from_env()
    else:
        from spira.local_server import server_env, start_local_server

        args.work.mkdir(parents=True, exist_ok=True)
        os.sched_setaffinity(0, {args.server_core})  # training, import and the server inherit this core
        pin = prepare_model(args.work)
        env = server_env(args.work / "bentoml", pin, **ONE_THREAD)
        env.pop("VAULT_ADDR", None)  # no archive: the model path only
        shutil.rmtree(args.work / "run", ignore_errors=True)
        started = time.monotonic()
        server = start_local_server(env, args.work / "run", name="bench")
        cold = time.monotonic() - started
        url, server_pid = server.url, server.pid
        cpu, rss = tree_usage(server_pid)
        header.append(
            f"server: bentoml serve on core {args.server_core}, client on cores {sorted(client_cores)}; "
            f"cold start to /readyz {cold:.1f} s, {cpu:.1f} CPU s; RSS idle {rss:.0f} MB"
        )
    try:
        os.sched_setaffinity(0, client_cores)
        for data in clips:  # warm the connection path
            closed_loop(url, [data], 1, 0.05)
        rows, best, best_cpu_rate, half = measure_served(url, clips, concurrency, args.seconds, server_pid)
        if server_pid:
            header.append(f"RSS after load {tree_usage(server_pid)[1]:.0f} MB")
    finally:
        if server is not None:
            server.stop()
    print("\n".join(header))
    print(
        C.table(
            f"Served maximum throughput (closed loop, {args.seconds:.0f} s per step)",
            ["clients", "req/s", "req per server CPU s", "errors", "load1"],
            rows,
        )
    )
    print(
        C.table(
            "Served latency at half the maximum load (open loop)",
            ["req/s offered", "answered", "errors", "p50 ms", "p95 ms", "p99 ms"],
            [
                [
                    f"{half['rate']:.1f}",
                    f"{half['n']:.0f}",
                    f"{half['errors']:.0f}",
                    f"{half['p50']:.1f}",
                    f"{half['p95']:.1f}",
                    f"{half['p99']:.1f}",
                ]
            ],
        )
    )
    if not args.url:
        rps, per_cpu = in_process(args.server_core, bundle_dir(args.work), args.seconds, args.clips)
        rows = [["req/s (wall)", f"{best:.1f}", f"{rps:.1f}", f"{best / rps:.2f}x"]]
        if best_cpu_rate:
            rows.append(
                [
                    "req per CPU second",
                    f"{best_cpu_rate:.1f}",
                    f"{per_cpu:.1f}",
                    f"{best_cpu_rate / per_cpu:.2f}x",
                ]
            )
        print(
            C.table(
                f"Served vs in-process, both on core {args.server_core} (load1 {C.load1():.1f})",
                ["measure", "served (best)", "in-process", "ratio"],
                rows,
            )
        )


if __name__ == "__main__":
    main()
