"""Servers of several code variants side by side: started together, each pinned to the server core, loaded
in alternation (4 client threads, short steps, order reversed every round), the server CPU ms per request of
each from /proc (issue 21's A/B figures in docs/performance.md).

    python -m benchmarks.served_ab --rounds 5 --seconds 4 \\
        before=/tmp/spira-before after=. uvloop=.:/tmp/uv-wheels uvicorn=.

A variant is NAME=CODE_DIR[:EXTRA_PATH]: the checkout to serve from (e.g. `git archive REV | tar -x -C DIR`)
and a folder put first on PYTHONPATH (e.g. `pip install --target DIR uvloop httptools` to try packages
without installing them). A NAME starting with "uvicorn" runs the app under plain uvicorn
(benchmarks.served_http:plain_app) instead of `bentoml serve`. --service picks what `bentoml serve` runs
(default the HTTP path alone, benchmarks.served_http:HttpPath; serving.service:Spira with --work's model).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from benchmarks import common as C
from benchmarks.served import ONE_THREAD, closed_loop, host_name, tree_usage


def main(argv: list[str] | None = None) -> None:
    from spira.local_server import private_home, server_env
    from spira.stack.net import free_port, http_status
    from spira.stack.process import ManagedProcess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="NAME=CODE_DIR[:EXTRA_PATH]")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--server-core", type=int, default=1)
    parser.add_argument("--client-cores", default="0")
    parser.add_argument("--service", default="benchmarks.served_http:HttpPath")
    parser.add_argument("--work", type=Path, default=Path("/tmp/spira-served"), help="the model (Spira only)")
    parser.add_argument("--runs", type=Path, default=Path("/tmp/spira-served-ab"))
    args = parser.parse_args(argv)
    clips = C.clips(4)
    servers = {}
    os.sched_setaffinity(0, {args.server_core})
    try:
        for variant in args.variants:
            name, _, rest = variant.partition("=")
            code, _, extra = rest.partition(":")
            code = str(Path(code).resolve())
            env = server_env(args.work / "bentoml", args.work / "model.lock.json", **ONE_THREAD)
            env.pop("VAULT_ADDR", None)
            env["PYTHONPATH"] = ":".join(p for p in (extra, code) if p)
            port = free_port()
            run = args.runs / name
            shutil.rmtree(run, ignore_errors=True)
            # each variant's metrics of its own (BentoML empties its home's multiprocess folder at start)
            env["BENTOML_HOME"] = str(private_home(args.work / "bentoml", run / "bentoml"))
            if name.startswith("uvicorn"):
                argv_ = [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "benchmarks.served_http:plain_app",
                    "--loop",
                    "uvloop",
                ]
                argv_ += [
                    "--http",
                    "httptools",
                    "--no-access-log",
                    "--port",
                    str(port),
                    "--host",
                    "127.0.0.1",
                ]
                path = "/info"
            else:
                bentoml = str(Path(sys.executable).parent / "bentoml")
                argv_ = [bentoml, "serve", args.service, "--port", str(port), "--host", "127.0.0.1"]
                path = "/readyz"
            proc = ManagedProcess(f"ab-{name}-{port}", argv_, run, env=env, grace_s=15, cwd=code)
            proc.start()
            servers[name] = (proc, f"http://127.0.0.1:{port}", path)
        os.sched_setaffinity(0, {int(c) for c in args.client_cores.split(",")})
        for name, (proc, url, path) in servers.items():
            deadline = time.monotonic() + 240
            while http_status(url + path) != 200:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name} did not start: see {proc.log_path}")
                time.sleep(1)
            for data in clips:
                closed_loop(url, [data], 1, 0.05)
        results: dict[str, list[float]] = {name: [] for name in servers}
        for r in range(args.rounds):
            for name in list(servers) if r % 2 == 0 else list(reversed(servers)):
                proc, url, _ = servers[name]
                pid = proc.pid()
                cpu0, t0 = tree_usage(pid)[0], time.monotonic()
                rps, errors = closed_loop(url, clips, args.clients, args.seconds)
                ms = 1e3 * (tree_usage(pid)[0] - cpu0) / (rps * (time.monotonic() - t0))
                results[name].append(ms)
                print(
                    f"round {r} {name}: {rps:.1f} req/s, {ms:.2f} server CPU ms/req, errors {errors}, "
                    f"load1 {C.load1():.1f}",
                    flush=True,
                )
    finally:
        for proc, _, _ in servers.values():
            proc.stop()
    print(f"\n{host_name()}, load1 {C.load1():.1f}: median server CPU ms per request")
    for name, runs in results.items():
        print(f"  {name}: {statistics.median(runs):.2f}  ({', '.join(f'{v:.2f}' for v in runs)})")
    print(json.dumps({name: statistics.median(runs) for name, runs in results.items()}))


if __name__ == "__main__":
    main()
