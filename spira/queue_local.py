"""The burst path on the local stack, as processes: the intake and workers started the way an operator
starts them (`spira intake`, `spira worker`), and real-shaped recordings to send. Used by the demo, the
queue benchmark and the integration tests, so all three run the same commands."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spira.stack.info import StackInfo
from spira.stack.net import free_port, http_status, wait_until

SPIRA = [sys.executable, "-m", "spira.cli"]
# (sample rate, channels) of the recordings phones send: SPIRA's own 48 kHz mono, 44.1 kHz stereo, 16 kHz
SHAPES = ((48_000, 1), (44_100, 2), (16_000, 1), (48_000, 2))
# what the intake must refuse with a 4xx, as /predict does
MALFORMED_KINDS = ("empty", "not_audio", "truncated", "silent", "too_short", "three_channels")


def process_env(info: StackInfo, tracking_uri: str | None = None, threads: int = 1) -> dict[str, str]:
    """An operator's shell on the stack (no workload contract: each command takes its own identity)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    env.update(
        SPIRA_HOME=str(info.home),
        MLFLOW_TRACKING_URI=tracking_uri or info.mlflow_uri,
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
    )
    env.update(info.mlflow_operator_env())
    return env


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL: what a node loss does to a pod."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace_s`; the exit status."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        return self.popen.returncode


@dataclass
class BurstPath:
    """The intake and the workers of one local stack; stop() ends every process it started."""

    info: StackInfo
    model_version: str
    logs: Path
    tracking_uri: str | None = None
    intake: Proc | None = None
    workers: list[Proc] = field(default_factory=list)
    intake_url: str = ""
    _hospital: object = None

    def hospital(self):
        """A hospital's credential for the intake (it lets in hospital clients only): a secret ID issued on
        the stack once per BurstPath (spira/stack/predict_clients.py); `.headers()` for each request."""
        if self._hospital is None:
            from spira.stack.predict_clients import credential

            self._hospital = credential(self.info, "hospital")
        return self._hospital

    def _spawn(self, name: str, argv: list[str], workload: str) -> Proc:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        # the workload's Vault contract, as `spira stack env` users get it from `act_as`, given explicitly
        env = {**process_env(self.info, self.tracking_uri), **self.info.service_env(workload)}
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                [*SPIRA, *argv],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return Proc(name, popen, log)

    def start_intake(self, port: int | None = None, timeout_s: float = 300) -> str:
        port = port or free_port()
        self.intake = self._spawn("intake", ["intake", "--port", str(port)], "intake")
        self.intake_url = f"http://127.0.0.1:{port}"
        if not wait_until(
            lambda: http_status(f"{self.intake_url}/readyz") == 200,
            timeout_s,
            abort=lambda: not self.intake.alive(),
        ):
            raise RuntimeError(f"the intake did not start:\n{self.intake.log_tail()}")
        return self.intake_url

    def start_worker(self, wait: bool = True, timeout_s: float = 600) -> Proc:
        proc = self._spawn(
            f"worker-{len(self.workers) + 1}", ["worker", "--model", self.model_version], "worker"
        )
        self.workers.append(proc)
        if wait and not wait_until(
            lambda: "worker ready" in proc.log_tail(50), timeout_s, abort=lambda: not proc.alive()
        ):
            raise RuntimeError(f"{proc.name} did not start:\n{proc.log_tail()}")
        return proc

    def stop(self) -> None:
        for proc in [*self.workers, *([self.intake] if self.intake else [])]:
            proc.stop()


def real_shaped_wav(rng: np.random.Generator, rate: int, channels: int, seconds: float) -> bytes:
    """A PCM16 WAV shaped like a phone recording: a voiced tone with harmonics, breath noise, per channel."""
    import soundfile as sf

    n = int(rate * seconds)
    t = np.arange(n) / rate
    f0 = rng.uniform(90, 260)
    voice = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t)
    mono = 0.25 * voice * envelope + 0.02 * rng.standard_normal(n)
    data = np.stack([mono * rng.uniform(0.7, 1.0) for _ in range(channels)], axis=1)
    buf = io.BytesIO()
    sf.write(buf, np.clip(data, -1, 1).astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def malformed_upload(rng: np.random.Generator, kind: str) -> bytes:
    if kind == "empty":
        return b""
    if kind == "not_audio":
        return b"%PDF-1.7 " + rng.bytes(2048)
    if kind == "truncated":
        return real_shaped_wav(rng, 48_000, 1, 2.0)[:6000]
    if kind == "silent":
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, np.zeros((48_000, 1), dtype=np.float32), 48_000, format="WAV", subtype="PCM_16")
        return buf.getvalue()
    if kind == "too_short":
        return real_shaped_wav(rng, 48_000, 1, 0.3)
    if kind == "three_channels":
        return real_shaped_wav(rng, 16_000, 3, 1.5)
    raise ValueError(kind)


def write_burst(
    folder: Path, n_valid: int, malformed_share: float = 0.05, seconds: float = 1.2, seed: int = 0
) -> tuple[list[Path], list[Path]]:
    """`n_valid` recordings of every shape and a share of malformed uploads, interleaved by name."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    valid, bad = [], []
    n_bad = round(n_valid * malformed_share / (1 - malformed_share))
    for i in range(n_valid):
        rate, channels = SHAPES[i % len(SHAPES)]
        path = folder / f"rec-{i:05d}-{rate // 1000}k-{channels}ch.wav"
        path.write_bytes(real_shaped_wav(rng, rate, channels, seconds * rng.uniform(1.0, 1.3)))
        valid.append(path)
    for i in range(n_bad):
        kind = MALFORMED_KINDS[i % len(MALFORMED_KINDS)]
        path = folder / f"rec-{i * n_valid // max(n_bad, 1):05d}-bad-{i}-{kind}.wav"
        path.write_bytes(malformed_upload(rng, kind))
        bad.append(path)
    return valid, bad


def chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def wait_for(check, timeout_s: float, interval_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval_s)
    return check()
