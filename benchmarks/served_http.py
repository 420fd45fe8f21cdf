"""The served HTTP path alone: `bentoml serve` of serving's app, client auth and runtime, with the model's
compute taken out, so that what a request costs outside the model is measured directly instead of as the
small difference of two large, noisy figures (issue 21).

    python -m benchmarks.served_http --work /tmp/spira-served --server-core 1 --client-cores 0

`HttpPath` is serving.service's app (BearerAuth over create_app, the same BentoML middleware, traffic
settings and metrics) over a ServingRuntime whose Predictor still reads and checks every upload
(decode_upload: header, samples, silence) and goes through the MicroBatcher, but makes no features (the
windows are zeros of the model's shape) and calls a model that returns 0.5. The benchmark reports the
server's CPU ms per request (its process tree, from /proc) at 4 clients, and the in-process CPU ms of the
same Predictor.predict_bytes; their difference is the HTTP path's cost. Served with
`bentoml serve benchmarks.served_http:HttpPath`; benchmark code only, never in the Bento.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import bentoml
import numpy as np

from benchmarks import common as C
from serving.app import UNTRACED_PATHS, create_app
from serving.inference import Predictor, Prepared, WindowModel
from spira_core.client_auth import BearerAuth
from spira_core.params import FeatureParams
from spira_core.uploads import decode_upload


class NoModel(WindowModel):
    def predict(self, windows: np.ndarray) -> np.ndarray:
        return np.full(len(windows), 0.5)


class UploadOnlyPredictor(Predictor):
    """Upload checks and decoding as served; no resampling, features or model compute."""

    def prepare(self, data: bytes) -> Prepared:
        upload = decode_upload(data, self.limits)
        windows = np.zeros((2, self.params.input_frames, self.params.n_mfcc), np.float32)
        return Prepared(windows, upload.duration_s, upload.sample_rate, upload.channels)


def predictor() -> UploadOnlyPredictor:
    return UploadOnlyPredictor(FeatureParams(), 0.5, "http-only", NoModel())


def _runtime():
    from serving.metrics import prometheus_metrics
    from serving.runtime import ServingRuntime

    return ServingRuntime(predictor(), prometheus_metrics())


app = BearerAuth(
    create_app(lambda: bentoml.get_current_service().runtime),
    verifier=lambda: None,
    rejected=lambda code: bentoml.get_current_service().runtime.metrics.rejected(code),
)


@bentoml.asgi_app(app, path="/")
@bentoml.service(
    name="spira-http",
    workers=1,
    traffic={"timeout": 30, "max_concurrency": 256},
    tracing={"excluded_urls": UNTRACED_PATHS},
)
class HttpPath:
    def __init__(self) -> None:
        self.runtime = _runtime()


# The same app and runtime without BentoML, for a side-by-side of the server itself:
#   python -m uvicorn benchmarks.served_http:plain_app --loop uvloop --http httptools --no-access-log
_plain: list = []


def _plain_runtime():
    if not _plain:
        _plain.append(_runtime())
    return _plain[0]


plain_app = BearerAuth(create_app(_plain_runtime), verifier=lambda: None)


def in_process_cpu_ms(clips: list[bytes], seconds: float) -> float:
    p = predictor()
    for data in clips:
        p.predict_bytes(data)
    done, start, cpu = 0, time.monotonic(), time.thread_time()
    while time.monotonic() - start < seconds:
        p.predict_bytes(clips[done % len(clips)])
        done += 1
    return 1e3 * (time.thread_time() - cpu) / done


def main(argv: list[str] | None = None) -> None:
    from benchmarks.served import ONE_THREAD, closed_loop, host_name, tree_usage
    from spira.local_server import REPO, start_local_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/spira-served-http"))
    parser.add_argument("--server-core", type=int, default=1)
    parser.add_argument("--client-cores", default="0")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args(argv)
    clips = C.clips(4)
    load_start = C.load1()
    os.sched_setaffinity(0, {args.server_core})
    C.pin_to_one_core(args.server_core)
    inproc = [in_process_cpu_ms(clips, args.seconds / 2)]
    run = args.work / "run"
    shutil.rmtree(run, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), **ONE_THREAD}
    env.pop("VAULT_ADDR", None)
    server = start_local_server(env, run, name="http", service="benchmarks.served_http:HttpPath")
    served = []
    try:
        os.sched_setaffinity(0, {int(c) for c in args.client_cores.split(",")})
        for data in clips:
            closed_loop(server.url, [data], 1, 0.05)
        for _ in range(args.rounds):
            cpu0, t0 = tree_usage(server.pid)[0], time.monotonic()
            rps, errors = closed_loop(server.url, clips, args.clients, args.seconds)
            cpu = tree_usage(server.pid)[0] - cpu0
            served.append(
                {"req_s": rps, "errors": errors, "cpu_ms": 1e3 * cpu / (rps * (time.monotonic() - t0))}
            )
    finally:
        server.stop()
    os.sched_setaffinity(0, {args.server_core})
    inproc.append(in_process_cpu_ms(clips, args.seconds / 2))
    served_ms = float(np.median([s["cpu_ms"] for s in served]))
    report = {
        "host": host_name(),
        "load1": [load_start, C.load1()],
        "served": served,
        "served_cpu_ms": served_ms,
        "in_process_cpu_ms": inproc,
        "http_path_cpu_ms": served_ms - float(np.mean(inproc)),
    }
    steps = ", ".join(f"{s['cpu_ms']:.2f} at {s['req_s']:.0f} req/s" for s in served)
    print(
        f"{report['host']}, load1 {load_start:.1f} → {C.load1():.1f}; server core {args.server_core}, "
        f"{args.clients} clients on {args.client_cores}\n"
        f"served (upload checks, no model): {served_ms:.2f} CPU ms per request "
        f"({steps})\n"
        f"in-process, same Predictor: {', '.join(f'{v:.2f}' for v in inproc)} CPU ms per request\n"
        f"the HTTP path: {report['http_path_cpu_ms']:.2f} CPU ms per request"
    )
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "served_http.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
