"""Bounded input against a real `bentoml serve`: 256 concurrent maximum-size uploads plus the FLAC bomb.

    python -m benchmarks.bounded_input --work /tmp/spira-bounded            # 256 uploads + the bomb
    python -m benchmarks.bounded_input --uploads 64                         # smaller

Builds a model bundle of an untrained SpiraConvV2 (memory and admission do not depend on the weights),
stores it under a private BentoML home (WORK/bentoml) with a pin of its own, starts `bentoml serve
serving.service:Spira` without Vault (no archive: the request path only), then sends at once N uploads of
the maximum size (a FLOAT WAV of 48 kHz stereo filling UploadLimits.max_bytes: valid audio, decoded) and
the 42 KB FLAC bomb (59 s, 192 kHz, stereo). Reports the status counts, whether the server still answers
/livez and a prediction afterwards, and the peak RSS of the server's process tree (sampled from /proc
every 20 ms) against the configured bound: idle RSS + UploadLimits.request_memory_bytes.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import io
import json
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import common as C
from benchmarks.served import tree_usage

MB = 2**20
# glibc returns a freed large buffer to the system only below its mmap threshold, which otherwise grows to
# 32 MiB after the first free of a big block; per-thread arenas keep the rest. Fixed here as in the image.
MALLOC = {"MALLOC_MMAP_THRESHOLD_": "1048576", "MALLOC_ARENA_MAX": "2"}


def max_size_upload(max_bytes: int) -> bytes:
    """A FLOAT WAV of 48 kHz stereo as long as the byte limit allows (~43.7 s for 16 MiB): all decoded."""
    import soundfile as sf

    frames = (max_bytes - 4096) // 8
    t = np.arange(frames) / 48_000
    voice = 0.3 * np.sin(2 * np.pi * 140 * t) + 0.01 * np.random.default_rng(0).standard_normal(frames)
    buf = io.BytesIO()
    sf.write(
        buf, np.repeat(voice[:, None], 2, axis=1).astype(np.float32), 48_000, format="WAV", subtype="FLOAT"
    )
    data = buf.getvalue()
    assert len(data) <= max_bytes, len(data)
    return data


def flac_bomb() -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.full((59 * 192_000, 2), 1000, dtype=np.int16), 192_000, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def multipart(data: bytes, filename: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def post(url: str, body: bytes, content_type: str, timeout: float = 120) -> tuple[int, str, str | None]:
    """(status, error code or "", Retry-After); status 0 when the connection failed."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        raw = resp.read()
        try:
            code = json.loads(raw).get("error", "") if raw else ""
        except ValueError:
            code = raw[:40].decode(errors="replace")
        return resp.status, code or "", resp.getheader("Retry-After")
    except OSError as exc:
        return 0, type(exc).__name__, None
    finally:
        conn.close()


@dataclass
class Outcome:
    statuses: collections.Counter
    bomb: tuple[int, str]
    busy_without_retry_after: int
    peak_rss_mb: float
    idle_rss_mb: float
    alive_after: bool
    seconds: float

    @property
    def server_errors(self) -> int:
        return sum(n for (status, _), n in self.statuses.items() if status >= 500 or status == 0)


def storm(url: str, server_pid: int, uploads: int, max_bytes: int) -> Outcome:
    """N maximum-size uploads and the FLAC bomb at once; the server's RSS sampled meanwhile."""
    body, ctype = multipart(max_size_upload(max_bytes), "max.wav")
    bomb_body, bomb_ctype = multipart(flac_bomb(), "bomb.flac")
    idle = tree_usage(server_pid)[1]
    results: list[tuple[int, str, str | None]] = []
    bomb: list[tuple[int, str, str | None]] = []
    lock = threading.Lock()
    go = threading.Event()
    peak = [idle]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_usage(server_pid)[1])
            time.sleep(0.02)

    def one() -> None:
        go.wait()
        r = post(url, body, ctype)
        with lock:
            results.append(r)

    def the_bomb() -> None:
        go.wait()
        bomb.append(post(url, bomb_body, bomb_ctype))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=one) for _ in range(uploads)] + [threading.Thread(target=the_bomb)]
    for t in threads:
        t.start()
    start = time.monotonic()
    go.set()
    for t in threads:
        t.join()
    seconds = time.monotonic() - start
    done.set()
    sampler.join()
    small, small_type = multipart(C.clips(1)[0], "after.wav")
    alive = post(url, small, small_type)[0] == 200
    counts = collections.Counter((s, c) for s, c, _ in results)
    no_retry = sum(1 for s, c, ra in results if c == "busy" and not ra)
    return Outcome(counts, bomb[0][:2], no_retry, peak[0], idle, alive, seconds)


# -- a served model in a private BentoML home --------------------------------------------------------------
def prepare_untrained(work: Path) -> Path:
    """WORK/model.lock.json pinning an untrained SpiraConvV2 bundle stored in WORK/bentoml."""
    pin = work / "model.lock.json"
    if pin.exists():
        return pin
    code = f"""
import torch
from pathlib import Path
from serving.pin import MODEL_NAME, ModelPin
from spira.bento.model_import import store_bundle
from spira_core.model import ModelBundle, build_model, bundle_digest, save_bundle
from spira_core.params import FeatureParams
torch.manual_seed(0)
params = FeatureParams()
bundle_dir = save_bundle(ModelBundle(build_model(params).eval(), params), Path({str(work / "bundle")!r}))
pin = ModelPin(MODEL_NAME, "0", bundle_digest(bundle_dir), "untrained", "", "")
store_bundle(pin, bundle_dir, source="benchmarks.bounded_input")
pin.write(Path({str(pin)!r}))
"""
    from spira.local_server import REPO, server_env

    out = subprocess.run(
        [sys.executable, "-c", code],
        env=server_env(work / "bentoml", pin),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        raise RuntimeError(f"storing the untrained bundle failed:\n{(out.stdout + out.stderr)[-3000:]}")
    return pin


def run(work: Path, uploads: int) -> Outcome:
    import shutil

    from benchmarks.served import ONE_THREAD
    from spira.local_server import server_env, start_local_server

    work.mkdir(parents=True, exist_ok=True)
    env = server_env(work / "bentoml", prepare_untrained(work), **ONE_THREAD, **MALLOC)
    env.pop("VAULT_ADDR", None)
    shutil.rmtree(work / "run", ignore_errors=True)
    server = start_local_server(env, work / "run", name="bounded")
    try:
        return storm(server.url, server.pid, uploads, _limits().max_bytes)
    finally:
        server.stop()


def _limits():
    from serving.limits import UploadLimits

    return UploadLimits()


def report(outcome: Outcome, uploads: int) -> str:
    limits = _limits()
    bound = outcome.idle_rss_mb + limits.request_memory_bytes / MB
    rows = [[str(s), c or "-", str(n)] for (s, c), n in sorted(outcome.statuses.items())]
    lines = [
        C.table(
            f"{uploads} concurrent uploads of {limits.max_bytes / MB:.0f} MiB + the FLAC bomb "
            f"({outcome.seconds:.1f} s, load1 {C.load1():.1f})",
            ["status", "error", "count"],
            [*rows, [str(outcome.bomb[0]), outcome.bomb[1] + " (the FLAC bomb)", "1"]],
        ),
        C.table(
            "Server",
            [
                "5xx or no answer",
                "busy without Retry-After",
                "alive after",
                "idle RSS MB",
                "peak RSS MB",
                "bound MB",
            ],
            [
                [
                    str(outcome.server_errors),
                    str(outcome.busy_without_retry_after),
                    "yes" if outcome.alive_after else "NO",
                    f"{outcome.idle_rss_mb:.0f}",
                    f"{outcome.peak_rss_mb:.0f}",
                    f"{bound:.0f}",
                ]
            ],
        ),
        f"\nbound = idle RSS + max_inflight_bytes {limits.max_inflight_bytes / MB:.0f} MiB + "
        f"{limits.max_concurrent_decodes} decodes × 2 × 4 B × {limits.max_decoded_samples} samples",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/spira-bounded"))
    parser.add_argument("--uploads", type=int, default=256)
    args = parser.parse_args(argv)
    outcome = run(args.work, args.uploads)
    print(report(outcome, args.uploads))


if __name__ == "__main__":
    main()
