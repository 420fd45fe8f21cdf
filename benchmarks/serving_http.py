"""Served vs in-process throughput, latency by concurrency, cold start and memory of `bentoml serve`.

    python -m benchmarks.serving_http --pin PIN.json --bentoml-home DIR [--seconds 10]

Starts the real service (the model named by the pin, imported in DIR), times cold start to /readyz, then
drives /predict with a 5 s 48 kHz WAV at several concurrencies from a thread pool on 127.0.0.1, and compares
with the same Predictor in-process. Bounded in time; prints a table (README figures come from here).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent


def clip(seconds: float = 5.0, rate: int = 48_000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    sig = 0.2 * sum(np.sin(2 * np.pi * 130 * k * t) / k for k in range(1, 6))
    buf = io.BytesIO()
    sf.write(buf, sig.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def post(url: str, data: bytes) -> float:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'.encode()
            + data + f"\r\n--{boundary}--\r\n".encode())
    req = urllib.request.Request(f"{url}/predict", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as resp:
        resp.read()
    return time.perf_counter() - started


def rss_mb(pgid: int) -> float:
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                total += int((entry / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total / 2**20


def drive(url: str, data: bytes, concurrency: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        while time.perf_counter() < deadline:
            latencies.append(post(url, data))

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()
    elapsed = time.perf_counter() - started
    q = np.percentile(np.array(latencies) * 1000, [50, 95])
    return {"concurrency": concurrency, "rps": len(latencies) / elapsed, "p50_ms": q[0], "p95_ms": q[1],
            "requests": len(latencies)}


def in_process_rps(pin: Path, home: Path, data: bytes, seconds: float) -> float:
    code = f"""
import os, time, json
os.environ['BENTOML_HOME'] = {str(home)!r}
import bentoml, torch
torch.set_num_threads(1)
from serving.pin import ModelPin
from serving.inference import Predictor
from serving.pin import read_model_meta
from spira_core.model import load_bundle
from pathlib import Path
m = bentoml.models.get(ModelPin.read(Path({str(pin)!r})).bento_tag)
p = Predictor.from_bundle(load_bundle(Path(m.path) / 'bundle'), read_model_meta(Path(m.path))['model_version'])
data = open({str(home / 'clip.wav')!r}, 'rb').read()
p.predict_bytes(data)
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < {seconds}:
    p.predict_bytes(data); n += 1
print(json.dumps({{'rps': n / (time.perf_counter() - t0)}}))
"""
    (home / "clip.wav").write_bytes(data)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=seconds + 120)
    return json.loads(out.stdout.strip().splitlines()[-1])["rps"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pin", type=Path, required=True)
    ap.add_argument("--bentoml-home", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--port", type=int, default=23999)
    args = ap.parse_args(argv)
    data = clip()
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENTOML_HOME": str(args.bentoml_home),
           "SPIRA_MODEL_PIN": str(args.pin)}
    env.pop("VAULT_ADDR", None)  # no archive in the benchmark: measures the model path
    started = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "bentoml"), "serve", "serving.service:Spira",
                             "--port", str(args.port), "--host", "127.0.0.1"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{args.port}"
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - started > 300:
                raise SystemExit("not ready within 300 s")
            time.sleep(0.1)
        cold = time.perf_counter() - started
        rss_idle = rss_mb(proc.pid)
        rows = [drive(url, data, c, args.seconds) for c in (1, 2, 4, 8)]
        rss_load = rss_mb(proc.pid)
    finally:
        os.killpg(proc.pid, 15)
    inproc = in_process_rps(args.pin, args.bentoml_home, data, args.seconds)
    best = max(r["rps"] for r in rows)
    print(f"cold start to /readyz: {cold:.1f} s; RSS idle {rss_idle:.0f} MB, under load {rss_load:.0f} MB")
    print(f"in-process (1 thread): {inproc:.1f} req/s; served best: {best:.1f} req/s ({best / inproc:.2f}x)")
    print("| concurrency | req/s | p50 ms | p95 ms | requests |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['concurrency']} | {r['rps']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['requests']} |")
    print(json.dumps({"cold_start_s": cold, "rss_idle_mb": rss_idle, "rss_load_mb": rss_load,
                      "in_process_rps": inproc, "served": rows, "load_avg": os.getloadavg()[0]},
                     default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
