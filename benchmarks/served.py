"""Served throughput and latency of a real `bentoml serve`, against the same Predictor in-process.

    python -m benchmarks.served --work /tmp/spira-served --server-core 1 --client-cores 0
    python -m benchmarks.served --archive off                          # only the model path (no stack)
    python -m benchmarks.served --url http://127.0.0.1:3000            # a server you started yourself
    python -m benchmarks.served --interleave 6    # archive off and on servers up together, loaded in turn
    python -m benchmarks.served --interleave 6 --tls   # the same with both servers listening with TLS only
    python -m benchmarks.served --tls-ab 6        # what TLS costs: archive-off servers plain and TLS, in turn

Without --url it brings its own server: the first run starts a private local stack (OpenBao, SeaweedFS,
MLflow on free ports under WORK/stack), makes a small synthetic dataset, trains the fast preset for a few
epochs through the real CLI, imports the registered version with `spira bento import` into WORK/bentoml
and stops the stack; later runs with the same --work reuse that import. Then, for each --archive mode,
`bentoml serve` of serving.service:Spira starts pinned to --server-core with one BLAS/OpenMP thread:

- archive off: without VAULT_ADDR (no archive, no client tokens): the HTTP and model path only;
- archive on: the stack up again, the server with serving's variables (its Vault secret, the spool under
  WORK/spool, clients' tokens checked), the client with the gate's token, and beside the server the
  archive's uploader (`python -m serving.uploader`, the pod's sidecar) pinned to --uploader-core (another
  core, as in the pod), uploading to the stack's SeaweedFS; its CPU is reported apart from the server's.
  `--spool /dev/shm/spira-spool` puts the spool on a tmpfs: the archive's cost without the disk's.
- `--tls` (with --interleave): both servers listen with TLS only, as the clusters' model pods do (a
  certificate from the local stack's CA through the settings the Rollout's container carries), and the
  client trusts only that CA; without it they serve plain HTTP, which no cluster does.

Each is measured:
1. Cold start to /readyz and RSS (the server's process tree).
2. Maximum throughput: closed loop, 1/2/4/8/16 concurrent clients (threads pinned to --client-cores) for
   --seconds each; req/s, and the server's CPU ms per request (utime+stime of its whole process tree from
   /proc: CPU time, which holds up on a shared machine where wall time does not).
3. Latency at half the best step's rate: open loop (requests scheduled at a fixed rate, latency counted
   from the scheduled time, so a slow server cannot hide queueing), p50/p95/p99.
In the same run, before and after the servers (and with --interleave, as a third step of every round, so
the host's drift moves both sides of the ratio alike): the same bundle through
`serving.inference.Predictor.predict_bytes` in one process pinned to the server's core, kept warm between
its steps (the in-process CPU ms per request). The summary gives served / in-process CPU per request
(issue 21: ≤ 1.25x archive off, the archive ≤ 10% more), the host's CPU model and the load average;
WORK/served.json (or --json) the figures.
The clips: --wav a recording sent as is, else 5.7 s 48 kHz PCM16 voice-like clips (benchmarks.common).
With --url (no in-process row, no server CPU) and a client's VAULT_ADDR and VAULT_ROLE in the environment,
requests carry that client's token. Loopback only unless --allow-remote.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import common as C
from serving.archive import ITEM_SUFFIX, LOCAL_SPOOL_ENV

MODEL_NAME = "spira-respiratory"
SYNTH_N, SYNTH_SEED, TRAIN_EPOCHS = 32, 7, 3  # a real, small training run: speed does not depend on accuracy
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# With --url against a server with Vault: the client's token (VAULT_ADDR + VAULT_ROLE of a client role, e.g.
# the gate's; spira_core/predict_credential.py). The server this benchmark starts has no Vault: no token.
_credential = None
# With --tls: the CA the servers' certificates are signed by (the local stack's), the only one the client trusts
_ca: Path | None = None


def _auth() -> dict[str, str]:
    return _credential.headers() if _credential is not None else {}


@dataclass(frozen=True)
class StackTls:
    """Server certificates from the local stack's CA (`spira.stack.tls.LocalCa`), as the clusters' model
    pods get theirs from the platform CA through cert-manager, and the settings that make `bentoml serve`
    listen with them (spira_core.tls: what the Rollout's container carries)."""

    home: Path
    ca: Path

    def server_env(self, run: Path) -> dict[str, str]:
        from spira.stack.tls import LocalCa
        from spira_core.tls import BENTOML_OVERRIDE_ENV, bentoml_ssl_options

        cert, key = run / "tls" / "tls.crt", run / "tls" / "tls.key"
        cert.parent.mkdir(parents=True, exist_ok=True)
        LocalCa(self.home, self.ca).issue("spira-model.spira.svc", cert, key)
        return {BENTOML_OVERRIDE_ENV: bentoml_ssl_options(cert, key)}


def _post(session, url: str, data: bytes) -> None:
    r = session.post(
        url + "/predict",
        files={"audio": ("clip.wav", data, "audio/wav")},
        headers=_auth(),
        timeout=60,
        verify=str(_ca) if _ca is not None else True,
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


def warm_connections(url: str, clips: list[bytes]) -> None:
    """One request per clip before a measured step: connections made (with TLS, their handshakes) and the
    server's first-request work done outside the step."""
    for data in clips:
        closed_loop(url, [data], 1, 0.05)


def open_loop(
    url: str, clips: list[bytes], rate: float, seconds: float, max_clients: int = 64
) -> dict[str, float]:
    """Latency percentiles (ms) at a fixed arrival rate; latency runs from each request's scheduled time."""
    import requests

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    local = threading.local()

    def send(i: int, scheduled: float) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        try:
            _post(local.session, url, clips[i % len(clips)])
            with lock:
                latencies.append(time.monotonic() - scheduled)
        except Exception:  # any failure is counted and reported; the load step goes on
            with lock:
                errors[0] += 1

    C.on_schedule(max(1, int(rate * seconds)), rate, max_clients, send)
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
def _in_process_worker(core: int, bundle: str, clips: list[bytes], steps, out) -> None:
    """Loads the bundle once, then measures one step per `steps` item (its seconds; None ends)."""
    from serving.inference import FastWindowModelAdapter, Predictor
    from spira_core.model import load_bundle

    C.pin_to_one_core(core)
    predictor = Predictor.from_bundle(load_bundle(Path(bundle)), "bench")
    if not isinstance(predictor.model, FastWindowModelAdapter):
        raise RuntimeError("the fast path fell back to the eager model")
    for data in clips:
        predictor.predict_bytes(data)
    done = 0
    while (seconds := steps.get()) is not None:
        n, start, cpu = 0, time.monotonic(), time.thread_time()
        while time.monotonic() - start < seconds:
            predictor.predict_bytes(clips[done % len(clips)])
            done, n = done + 1, n + 1
        out.put((n / (time.monotonic() - start), n / (time.thread_time() - cpu)))


class InProcess:
    """Predictor.predict_bytes over the same bundle and clips in a process of its own pinned to the server's
    core (one BLAS thread, warm), kept up so that its steps can sit between the servers' steps: the host's
    drift (±10% within minutes on a shared VM) then moves both sides of the ratio alike."""

    def __init__(self, core: int, bundle: Path, clips: list[bytes]) -> None:
        ctx = mp.get_context("spawn")
        self._steps, self._out = ctx.Queue(), ctx.Queue()
        self._proc = ctx.Process(
            target=_in_process_worker, args=(core, str(bundle), clips, self._steps, self._out), daemon=True
        )
        self._proc.start()

    def measure(self, seconds: float) -> tuple[float, float]:
        """(req/s wall, req per CPU second) of one step of `seconds`."""
        self._steps.put(seconds)
        return self._out.get(timeout=seconds + 180)

    def close(self) -> None:
        self._steps.put(None)
        self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.kill()


# -- the measurement ----------------------------------------------------------------------------------------
def measure_served(
    url: str,
    clips: list[bytes],
    concurrency: list[int],
    seconds: float,
    server_pid: int | None,
    uploader_pid: int | None = None,
) -> dict[str, object]:
    """Closed-loop steps (req/s, and the server's CPU ms per request from /proc; the uploader's apart),
    then the open loop at half the best step's rate."""
    steps = []
    for conc in concurrency:
        cpu0 = tree_usage(server_pid)[0] if server_pid else None
        up0 = tree_usage(uploader_pid)[0] if uploader_pid else None
        t0 = time.monotonic()
        rps, errors = closed_loop(url, clips, conc, seconds)
        step: dict[str, float | None] = {"clients": conc, "req_s": rps, "errors": errors, "load1": C.load1()}
        step["server_cpu_ms"] = None
        if server_pid:
            cpu_s = tree_usage(server_pid)[0] - cpu0
            done = rps * (time.monotonic() - t0)
            step["server_cpu_ms"] = 1e3 * cpu_s / done if done else None
        if uploader_pid and up0 is not None:
            done = rps * (time.monotonic() - t0)
            up_s = tree_usage(uploader_pid)[0] - up0
            step["uploader_cpu_ms"] = 1e3 * up_s / done if done else None
        steps.append(step)
    best = max(steps, key=lambda s: (s["req_s"], s["clients"]))
    half = open_loop(url, clips, float(best["req_s"]) / 2, seconds * 2)
    return {"steps": steps, "best": best, "half_load": half}


def _server_env(work: Path, pin: Path, stack_env: dict[str, str] | None) -> dict[str, str]:
    from spira.local_server import server_env

    env = server_env(work / "bentoml", pin, **ONE_THREAD, **(stack_env or {}))
    if stack_env is None:
        env.pop("VAULT_ADDR", None)  # no Vault: no archive and no client tokens, the HTTP and model path only
    return env


def _start(
    work: Path, pin: Path, stack_env: dict[str, str] | None, args, name: str, tls: StackTls | None = None
):
    """`bentoml serve` pinned to the server core (and with `stack_env`, the archive on, its uploader pinned
    to --uploader-core, stopped after the server by `server.stop()`; with `tls`, listening with TLS only, as
    the clusters' pods do); (server, seconds to /readyz)."""
    from spira.local_server import start_local_server, start_uploader

    run = work / name
    shutil.rmtree(run, ignore_errors=True)
    env = _server_env(work, pin, stack_env)
    if tls is not None:
        env.update(tls.server_env(run))
    uploader = None
    if stack_env:  # the pod's sidecar, on a core of its own (it inherits this process's core)
        os.sched_setaffinity(0, {args.uploader_core})
        uploader = start_uploader(env, run, f"{name}-uploader")
    os.sched_setaffinity(0, {args.server_core})  # the server inherits the core
    started = time.monotonic()
    try:
        server = start_local_server(
            env, run, name=name, uploader=False, https_ca=tls.ca if tls is not None else None
        )
    except BaseException:
        if uploader is not None:
            uploader.stop()
        raise
    server.uploader = uploader  # stopped after the server, as the pod stops its sidecar
    return server, time.monotonic() - started


def serve_and_measure(
    work: Path, pin: Path, stack_env: dict[str, str] | None, args, clips: list[bytes], concurrency: list[int]
) -> dict[str, object]:
    """One `bentoml serve` pinned to the server core, measured, stopped. With `stack_env` (the stack's
    serving variables) the archive is on: the spool under WORK/spool, uploads to the stack's SeaweedFS."""
    server, cold = _start(work, pin, stack_env, args, "run-archive" if stack_env else "run")
    uploader = server.uploader
    try:
        cpu, rss = tree_usage(server.pid)
        os.sched_setaffinity(0, {int(c) for c in args.client_cores.split(",")})
        warm_connections(server.url, clips)
        up_pid = uploader.pid() if uploader is not None else None
        result = measure_served(server.url, clips, concurrency, args.seconds, server.pid, up_pid)
        result.update(
            cold_start_s=cold, cold_cpu_s=cpu, rss_idle_mb=rss, rss_after_mb=tree_usage(server.pid)[1]
        )
        if uploader is not None:
            result.update(spool_left=_spool_backlog(Path(stack_env[LOCAL_SPOOL_ENV]), 60))
    finally:
        server.stop()
    return result


def interleaved(
    work: Path,
    pin: Path,
    stack_env: dict[str, str],
    args,
    clips: list[bytes],
    inproc: InProcess,
    tls: StackTls | None = None,
) -> dict:
    """Archive off and on side by side: both servers up on the server core at once, loaded in alternation
    (--interleave rounds of one closed-loop step at --interleave-clients, or with --interleave-rate of one
    open-loop step at that many requests/s), with a step of `inproc` in each round (the order rotated each
    round), so all three see the same host; server CPU ms per request of each step, the uploader's, and the
    in-process CPU ms per request beside them. In a closed loop, whatever
    lengthens a request (the archive's wait for its fsync) also spaces the clients' next requests, so fewer
    meet in one model batch; an open loop offers both servers the same arrivals. With `tls`, both servers
    listen with TLS only and the client trusts only the stack's CA (the clusters' configuration)."""
    global _ca
    _ca = tls.ca if tls is not None else None
    off, _ = _start(work, pin, None, args, "run-ab-off", tls)
    try:
        on, _ = _start(work, pin, stack_env, args, "run-ab-on", tls)
    except BaseException:
        off.stop()
        raise
    figures: dict[str, list[float]] = {
        "off": [],
        "on": [],
        "uploader": [],
        "load1": [],
        "p95_off": [],
        "p95_on": [],
        "in_process": [],
    }
    try:
        os.sched_setaffinity(0, {int(c) for c in args.client_cores.split(",")})
        for server in (off, on):
            warm_connections(server.url, clips)
        contenders = [("off", off), ("on", on), ("in-process", None)]
        for r in range(args.interleave):
            for mode, server in contenders[r % 3 :] + contenders[: r % 3]:
                if server is None:
                    figures["in_process"].append(1e3 / inproc.measure(args.seconds)[1])
                    continue
                cpu0 = tree_usage(server.pid)[0]
                up_pid = server.uploader.pid() if server.uploader is not None else None
                up0 = tree_usage(up_pid)[0] if up_pid else 0.0
                t0 = time.monotonic()
                if args.interleave_rate:
                    step = open_loop(server.url, clips, args.interleave_rate, args.seconds)
                    done = step["n"]
                    figures[f"p95_{mode}"].append(step["p95"])
                else:
                    rps, _ = closed_loop(server.url, clips, args.interleave_clients, args.seconds)
                    done = rps * (time.monotonic() - t0)
                figures[mode].append(1e3 * (tree_usage(server.pid)[0] - cpu0) / done)
                if up_pid:
                    figures["uploader"].append(1e3 * (tree_usage(up_pid)[0] - up0) / done)
            figures["load1"].append(C.load1())
        spool_left = _spool_backlog(Path(stack_env[LOCAL_SPOOL_ENV]), 60)
    finally:
        on.stop()
        off.stop()
    ratios = [b / a for a, b in zip(figures["off"], figures["on"], strict=True)]
    served = [a / c for a, c in zip(figures["off"], figures["in_process"], strict=True)]
    return {
        **figures,
        "off_over_in_process_each_round": served,
        "median_in_process": float(np.median(figures["in_process"])),
        "median_off_over_in_process": float(np.median(served)),
        "clients": args.interleave_clients,
        "rate": args.interleave_rate,
        "tls": tls is not None,
        "ratio_each_round": ratios,
        "median_off": float(np.median(figures["off"])),
        "median_on": float(np.median(figures["on"])),
        "median_ratio": float(np.median(ratios)),
        "median_uploader": float(np.median(figures["uploader"])) if figures["uploader"] else None,
        "spool_left": spool_left,
    }


def tls_side_by_side(work: Path, pin: Path, args, clips: list[bytes], tls: StackTls) -> dict:
    """What TLS costs the served path: two archive-off servers on the server core at once, one plain HTTP,
    one listening with TLS only (the clusters' configuration), loaded in alternation (--tls-ab rounds of one
    closed-loop step each at --interleave-clients, the order swapped every round); server CPU ms per request
    of each step."""
    global _ca
    plain, _ = _start(work, pin, None, args, "run-plain")
    try:
        secure, _ = _start(work, pin, None, args, "run-tls", tls)
    except BaseException:
        plain.stop()
        raise
    figures: dict[str, list[float]] = {"plain": [], "tls": [], "load1": []}
    try:
        os.sched_setaffinity(0, {int(c) for c in args.client_cores.split(",")})
        servers = [("plain", plain, None), ("tls", secure, tls.ca)]
        for r in range(args.tls_ab):
            for mode, server, ca in servers if r % 2 == 0 else servers[::-1]:
                _ca = ca
                warm_connections(server.url, clips)
                cpu0, t0 = tree_usage(server.pid)[0], time.monotonic()
                rps, _ = closed_loop(server.url, clips, args.interleave_clients, args.seconds)
                figures[mode].append(
                    1e3 * (tree_usage(server.pid)[0] - cpu0) / (rps * (time.monotonic() - t0))
                )
            figures["load1"].append(C.load1())
    finally:
        _ca = None
        secure.stop()
        plain.stop()
    ratios = [b / a for a, b in zip(figures["plain"], figures["tls"], strict=True)]
    return {
        **figures,
        "clients": args.interleave_clients,
        "ratio_each_round": ratios,
        "median_plain": float(np.median(figures["plain"])),
        "median_tls": float(np.median(figures["tls"])),
        "median_ratio": float(np.median(ratios)),
    }


def _spool_backlog(spool: Path, wait_s: float) -> int:
    """Items still waiting in the spool once the uploader had up to `wait_s` to catch up."""
    deadline = time.monotonic() + wait_s
    while True:
        left = sum(1 for _ in spool.rglob(f"*{ITEM_SUFFIX}") if _.parent.name != "failed")
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.5)


@contextlib.contextmanager
def archive_stack(work: Path, spool: Path, core: int | None = None):
    """The stack the archive needs (Vault for the serving secret and client tokens, SeaweedFS), up for the
    archive-on run, its processes pinned to `core` when given (in a cluster they are other machines, never
    the pod's core); yields (the server's variables, the spool at `spool` among them, a gate client's
    credential, the stack's CA for servers that listen with TLS)."""
    from spira.stack import LocalStack, StackConfig
    from spira.stack.predict_clients import client_env
    from spira.stack.private import free_stack_ports
    from spira_core.predict_credential import PredictCredential

    # a fresh stack each time: a restarted one gets new free ports, and the serving secret it seeded the first
    # time would still name the old S3 endpoint
    home = work / "stack-archive"
    shutil.rmtree(home, ignore_errors=True)
    stack = LocalStack(StackConfig.load(home, **free_stack_ports()), with_registry=False)
    try:
        info = stack.up()
        if core is not None:
            off_the_server_core(home, core)
        env = {**info.service_env("serving"), LOCAL_SPOOL_ENV: str(spool)}
        yield env, PredictCredential.from_env(client_env(info, "gate")), StackTls(home, info.vault_ca)
    finally:
        stack.down()


def off_the_server_core(home: Path, core: int) -> None:
    """Every thread of every process whose command line names the stack's home, onto `core`."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if str(home).encode() not in (proc / "cmdline").read_bytes():
                continue
            for task in (proc / "task").iterdir():
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task.name), {core})


def archive_costs(stack_env: dict[str, str], work: Path, clip: bytes, n: int = 40) -> dict[str, float]:
    """CPU ms per item, in this process, of the archive's two halves against the same stack: the server's
    `submit` (one file written, fsynced, renamed, its folder fsynced), the same 4 uploads at a time (one
    group commit each: 4 files, 1 folder fsync) and the uploader's upload (two S3 PUTs through boto3, the
    file deleted)."""
    from serving.archive import S3Archive, Spool, Uploader
    from serving.metrics import ArchiveMetrics
    from spira_core.settings import cached_service_secret

    class NoMetrics(ArchiveMetrics):
        def archive_state(self, pending, uploaded=0, failed=0, dropped=0, poisoned=0):
            pass

    folder = work / "spool-costs"
    shutil.rmtree(folder, ignore_errors=True)
    env = {**os.environ, **stack_env}
    spool = Spool(folder, NoMetrics())
    uploader = Uploader(S3Archive(cached_service_secret(env)), folder, NoMetrics())
    answer = {"probability": 0.5, "label": "control", "model_version": "bench"}
    spool.submit(clip, answer, "warm.wav", synthetic=True)
    uploader.drain_once()  # the client and the connection made
    # process time: the spool's writer and fsync helper threads do the work (nothing else runs meanwhile)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        spool.submit(clip, answer, f"{i}.wav", synthetic=True)
    submit_cpu, submit_wall = time.process_time() - cpu, time.perf_counter() - wall
    # the same uploads 4 at a time, as concurrent requests queue them: one group commit each
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(0, n, 4):
        for done in [spool.queue(clip, answer, f"g{i + k}.wav", synthetic=True) for k in range(4)]:
            done.result()
    group_cpu, group_wall = time.process_time() - cpu, time.perf_counter() - wall
    cpu = time.thread_time()
    uploaded = uploader.drain_once(ignore_backoff=True)
    upload_cpu = time.thread_time() - cpu
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "submit_cpu_ms": 1e3 * submit_cpu / n,
        "submit_wall_ms": 1e3 * submit_wall / n,
        "grouped_cpu_ms": 1e3 * group_cpu / n,
        "grouped_wall_ms": 1e3 * group_wall / (n // 4),
        "upload_cpu_ms": 1e3 * upload_cpu / uploaded if uploaded else None,
        "uploaded": uploaded,
        "of": 2 * n,
        "last_error": uploader.last_error,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def summary(report: dict[str, object]) -> str:
    out = []
    if "tls_ab" in report:
        ab = report["tls_ab"]
        rows = [
            [str(i + 1), _ms(a), _ms(b), f"{r:.3f}x", f"{load:.1f}"]
            for i, (a, b, r, load) in enumerate(
                zip(ab["plain"], ab["tls"], ab["ratio_each_round"], ab["load1"], strict=True)
            )
        ]
        rows.append(
            ["median", _ms(ab["median_plain"]), _ms(ab["median_tls"]), f"{ab['median_ratio']:.3f}x", ""]
        )
        out.append(
            C.table(
                f"archive off, plain HTTP and TLS only side by side: {ab['clients']} clients, "
                f"{report['seconds']:.0f} s per step, server core {report['server_core']}, {report['host']}",
                ["round", "plain: server CPU ms/req", "TLS: server CPU ms/req", "TLS / plain", "load1"],
                rows,
            )
        )
    if "interleaved" in report:
        ab = report["interleaved"]
        p95 = bool(ab.get("p95_off"))
        rows = [
            [
                str(i + 1),
                _ms(c),
                _ms(a),
                _ms(b),
                f"{a / c:.2f}x",
                f"{b / a:.2f}x",
                _ms(u) if ab["uploader"] else "-",
                f"{load:.1f}",
            ]
            + ([_ms(ab["p95_off"][i]), _ms(ab["p95_on"][i])] if p95 else [])
            for i, (c, a, b, u, load) in enumerate(
                zip(
                    ab["in_process"],
                    ab["off"],
                    ab["on"],
                    ab["uploader"] or [None] * len(ab["off"]),
                    ab["load1"],
                    strict=True,
                )
            )
        ]
        rows.append(
            [
                "median",
                _ms(ab["median_in_process"]),
                _ms(ab["median_off"]),
                _ms(ab["median_on"]),
                f"{ab['median_off_over_in_process']:.2f}x",
                f"{ab['median_ratio']:.2f}x",
                _ms(ab["median_uploader"]),
                "",
            ]
            + ([_ms(float(np.median(ab["p95_off"]))), _ms(float(np.median(ab["p95_on"])))] if p95 else [])
        )
        out.append(
            C.table(
                "in-process, archive off and archive on, interleaved: "
                + (f"open loop at {ab['rate']:g} req/s" if ab.get("rate") else f"{ab['clients']} clients")
                + (", both servers over TLS" if ab.get("tls") else ", plain HTTP")
                + f", {report['seconds']:.0f} s per step, "
                f"server core {report['server_core']}, uploader core {report['uploader_core']}, {report['host']}; "
                f"spool left after 60 s: {ab['spool_left']}",
                [
                    "round",
                    "in-process CPU ms/req",
                    "off: server CPU ms/req",
                    "on: server CPU ms/req",
                    "off / in-process",
                    "on / off",
                    "uploader CPU ms/req",
                    "load1",
                ]
                + (["p95 off ms", "p95 on ms"] if p95 else []),
                rows,
            )
        )
    inproc = report.get("in_process")
    for mode, res in report["modes"].items():
        rows = [
            [
                str(s["clients"]),
                f"{s['req_s']:.1f}",
                _ms(s["server_cpu_ms"]),
                _ms(s.get("uploader_cpu_ms")),
                str(s["errors"]),
                f"{s['load1']:.1f}",
            ]
            for s in res["steps"]
        ]
        out.append(
            C.table(
                f"archive {mode}: closed loop, {report['seconds']:.0f} s per step (cold start "
                f"{res.get('cold_start_s', 0):.1f} s, RSS {res.get('rss_idle_mb', 0):.0f} → "
                f"{res.get('rss_after_mb', 0):.0f} MB"
                + (f"; spool left after 60 s: {res['spool_left']}" if "spool_left" in res else "")
                + ")",
                ["clients", "req/s", "server CPU ms / req", "uploader CPU ms / req", "errors", "load1"],
                rows,
            )
        )
    rows = []
    for mode, res in report["modes"].items():
        best, half = res["best"], res["half_load"]
        cpu = best["server_cpu_ms"]
        ratio = f"{cpu / inproc['cpu_ms']:.2f}x" if inproc and cpu else "-"
        rows.append(
            [
                f"archive {mode}",
                f"{best['req_s']:.1f} ({best['clients']})",
                _ms(cpu),
                _ms(inproc["cpu_ms"]) if inproc else "-",
                ratio,
                f"{half['rate']:.1f}",
                f"{half['p50']:.1f} / {half['p95']:.1f}",
                f"{half['errors']:.0f}",
            ]
        )
    out.append(
        ""
        if not rows
        else C.table(
            f"Summary: server core {report['server_core']}, client cores {report['client_cores']}, "
            f"{report['host']}, load1 {report['load1_start']:.1f} → {report['load1_end']:.1f}",
            [
                "mode",
                "max req/s (clients)",
                "server CPU ms/req",
                "in-process CPU ms/req",
                "served / in-process CPU",
                "half load req/s",
                "p50 / p95 ms",
                "errors",
            ],
            rows,
        )
    )
    if "archive_costs" in report:
        costs = report["archive_costs"]
        out.append(
            f"\narchive, per upload, in one process on core {report['server_core']} against the same stack: "
            f"the server's submit (1 file written, fsynced, renamed; its folder fsynced) "
            f"{costs['submit_cpu_ms']:.2f} CPU ms ({costs['submit_wall_ms']:.2f} ms wall), 4 queued at once "
            f"(one group commit) {costs['grouped_cpu_ms']:.2f} CPU ms each ({costs['grouped_wall_ms']:.2f} ms "
            f"wall a group); the uploader's "
            f"upload (2 S3 PUTs, boto3) {_ms(costs['upload_cpu_ms'])} CPU ms ({costs['uploaded']} of "
            f"{costs['of']} archived; last error: {costs['last_error']})"
        )
    if inproc:
        out.append(
            f"\nin-process (Predictor.predict_bytes, same bundle, core {report['server_core']}): "
            f"{inproc['req_s']:.1f} req/s, {inproc['cpu_ms']:.2f} CPU ms per request "
            f"(runs before and after: {', '.join(f'{v:.2f}' for v in inproc['runs_cpu_ms'])})"
        )
    return "\n".join(out)


def host_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def load_clips(args) -> list[bytes]:
    """--wav: a real recording, sent as is; else the generated 5.7 s 48 kHz PCM16 voice-like clips."""
    if args.wav:
        return [args.wav.read_bytes()]
    return C.clips(args.clips)


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
    parser.add_argument(
        "--uploader-core",
        type=int,
        default=None,
        help="the archive uploader's core (default: the first client core)",
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each load step")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--wav", type=Path, help="a recording to send instead of the generated clips")
    parser.add_argument("--concurrency", default="1,2,4,8,16")
    parser.add_argument("--archive", choices=["off", "on", "both"], default="both")
    parser.add_argument(
        "--interleave",
        type=int,
        default=0,
        help="ROUNDS: archive off and on servers up together, loaded in alternation (instead of one after the other)",
    )
    parser.add_argument("--interleave-clients", type=int, default=4)
    parser.add_argument(
        "--interleave-rate",
        type=float,
        default=0.0,
        help="REQ/S: each interleaved step an open loop at this fixed arrival rate instead of closed-loop clients",
    )
    parser.add_argument(
        "--spool",
        type=Path,
        help="the archive's spool (default WORK/spool); on a tmpfs (/dev/shm/...) the archive's cost without the disk",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="with --interleave: both servers listen with TLS only (the clusters' configuration), certificates "
        "from the local stack's CA, the only one the client trusts",
    )
    parser.add_argument(
        "--tls-ab",
        type=int,
        default=0,
        help="ROUNDS: only what TLS costs: archive-off servers plain and TLS only, up together, loaded in turn",
    )
    parser.add_argument("--json", type=Path, help="write the figures there (default WORK/served.json)")
    parser.add_argument("--allow-remote", action="store_true")
    args = parser.parse_args(argv)
    if args.tls and not args.interleave:
        parser.error("--tls needs --interleave (the servers' certificates come from the stack it starts)")
    if args.uploader_core is None:
        args.uploader_core = int(args.client_cores.split(",")[0])
    if args.spool is None:
        args.spool = args.work / "spool"
    global _credential
    concurrency = [int(c) for c in args.concurrency.split(",")]
    clips = load_clips(args)
    report: dict[str, object] = {
        "host": host_name(),
        "load1_start": C.load1(),
        "server_core": args.server_core,
        "client_cores": args.client_cores,
        "uploader_core": args.uploader_core,
        "seconds": args.seconds,
        "clip_bytes": [len(c) for c in clips],
        "modes": {},
    }
    if args.url:
        host = urllib.parse.urlparse(args.url).hostname
        if host not in {"127.0.0.1", "localhost", "::1"} and not args.allow_remote:
            parser.error(f"{host} is not loopback; pass --allow-remote to benchmark it")
        if os.environ.get("VAULT_ADDR") and os.environ.get("VAULT_ROLE"):
            from spira_core.predict_credential import PredictCredential

            _credential = PredictCredential.from_env()
        os.sched_setaffinity(0, {int(c) for c in args.client_cores.split(",")})
        report["modes"]["given"] = measure_served(
            args.url.rstrip("/"), clips, concurrency, args.seconds, None
        )
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        os.sched_setaffinity(0, {args.server_core})  # training and the import stay off the client's core
        pin = prepare_model(args.work)
        inproc = InProcess(args.server_core, bundle_dir(args.work), clips)
        try:
            runs = [inproc.measure(args.seconds)]
            if args.tls_ab:
                with archive_stack(args.work, args.spool, args.uploader_core) as (_env, _cred, tls):
                    report["tls_ab"] = tls_side_by_side(args.work, pin, args, clips, tls)
            elif args.interleave:
                with archive_stack(args.work, args.spool, args.uploader_core) as (stack_env, credential, tls):
                    _credential = credential  # the off server checks no token; it ignores the header
                    report["interleaved"] = interleaved(
                        args.work, pin, stack_env, args, clips, inproc, tls if args.tls else None
                    )
            elif args.archive in ("off", "both"):
                report["modes"]["off"] = serve_and_measure(args.work, pin, None, args, clips, concurrency)
            if args.archive in ("on", "both") and not (args.interleave or args.tls_ab):
                with archive_stack(args.work, args.spool) as (stack_env, credential, _tls):
                    _credential = credential
                    report["modes"]["on"] = serve_and_measure(
                        args.work, pin, stack_env, args, clips, concurrency
                    )
                    os.sched_setaffinity(0, {args.server_core})
                    report["archive_costs"] = archive_costs(stack_env, args.work, clips[0])
            runs.append(inproc.measure(args.seconds))
        finally:
            inproc.close()
        report["in_process"] = {
            "req_s": float(np.mean([r[0] for r in runs])),
            "cpu_ms": float(np.mean([1e3 / r[1] for r in runs])),
            "runs_cpu_ms": [1e3 / r[1] for r in runs],
        }
    report["load1_end"] = C.load1()
    print(summary(report))
    out = args.json or (args.work / "served.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nfigures written to {out}")


if __name__ == "__main__":
    main()
