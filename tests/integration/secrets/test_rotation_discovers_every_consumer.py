"""`spira secrets rotate` of serving, training and MLflow at once, with no --consumer: it finds every
consumer itself while two real serving processes answer requests, a real training run is in progress and
MLflow holds its key. No request fails, the run finishes and is in MLflow, MLflow is restarted onto its new
key, and every old key is then refused by the object store.

Real OpenBao, SeaweedFS, MLflow and `bentoml serve` (the session's served model plus a second server of
the same model, both registered in the stack as the local stand-in for EndpointSlices)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf

from infra.vault import layout
from serving.archive import UPLOADS_PREFIX
from spira.stack import LocalStack, StackConfig, StackInfo
from spira.stack.consumers import registered
from tests.contract.client import auth_headers
from tests.fixtures.model import (
    TEST_EPOCHS,
    RegisteredModel,
    ServedModel,
    pipeline_run_args,
    second_server_home,
    start_server,
    stop_server,
)
from tests.integration.secrets.helpers import REPO, local_target, s3_put_works

pytestmark = pytest.mark.integration

SERVICES = ("serving", "training", "mlflow")
# Where each old key is probed: a bucket key its grants allow writing.
PROBE = {
    "serving": ("archive_bucket", f"{UPLOADS_PREFIX}rotation-probe"),
    "training": ("features_bucket", "rotation-probe"),
    "mlflow": ("artifacts_bucket", "rotation-probe"),
}


def clip() -> bytes:
    t = np.arange(48_000 * 4) / 48_000
    buf = io.BytesIO()
    sf.write(
        buf, (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 48_000, format="WAV", subtype="PCM_16"
    )
    return buf.getvalue()


@dataclass
class Load:
    urls: list[str]
    answered: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        body, i = clip(), 0
        while not stop.is_set():
            url = self.urls[i % len(self.urls)]
            i += 1
            try:
                resp = requests.post(
                    f"{url}/predict",
                    files={"audio": ("a.wav", body, "audio/wav")},
                    headers=auth_headers(),  # the suite's /predict client (tests/contract/client.py)
                    timeout=30,
                )
                if resp.status_code == 200:
                    self.answered[url] = self.answered.get(url, 0) + 1
                else:
                    self.failures.append(f"{url}: {resp.status_code} {resp.text[:200]}")
            except requests.RequestException as exc:
                self.failures.append(f"{url}: {exc}")
            time.sleep(0.1)


@contextmanager
def requests_flowing(*urls: str) -> Iterator[Load]:
    load, stop = Load(list(urls)), threading.Event()
    thread = threading.Thread(target=load.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield load
    finally:
        stop.set()
        thread.join(timeout=60)


def spira_popen(args: list[str], env: dict[str, str], out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "spira.cli", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        stdout=subprocess.DEVNULL,
        stderr=out.open("w"),
        text=True,
    )


def wait_for(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout_s}s"
        time.sleep(0.2)


def test_rotating_every_service_while_mlflow_a_training_run_and_two_servers_hold_their_keys_fails_nothing(
    local_stack: StackInfo, registered_model: RegisteredModel, served_model: ServedModel, tmp_path: Path
) -> None:
    target = local_target(local_stack)
    before = {s: target.secrets.read(layout.secret_path("local", s)) for s in SERVICES}
    mlflow = LocalStack(StackConfig.load(local_stack.home)).mlflow
    mlflow_pid = mlflow.process().pid()
    second = start_server(local_stack, registered_model, second_server_home(served_model))
    children: list[subprocess.Popen] = []
    try:
        servers = {r.name for r in registered(local_stack.home, "serving")}
        assert len(servers) == 2, f"both servers register as consumers of serving's secret: {servers}"
        with requests_flowing(served_model.url, second.url) as load:
            outcome = tmp_path / "outcome.json"
            run = spira_popen(
                # the session model's features are reused (same data and seed): a new train, evaluate, publish
                pipeline_run_args(registered_model.data_dir, TEST_EPOCHS + 2, outcome),
                local_stack.service_env("training"),
                tmp_path / "run.log",
            )

            def run_holds_a_lease() -> bool:
                now = datetime.now(UTC)
                return any(lease.live(now) for lease in target.run_leases.leases("training"))

            wait_for(lambda: run_holds_a_lease() or run.poll() is not None, 120, "the run's lease")
            children.append(run)
            assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            rotations = {
                s: spira_popen(
                    # a generous bound: a loaded 2-core CI machine trains slowly (the wait ends with the run)
                    ["secrets", "rotate", "--env", "local", "--service", s, "--consumer-timeout", "1200"],
                    {"SPIRA_HOME": str(local_stack.home)},
                    tmp_path / f"rotate-{s}.log",
                )
                for s in SERVICES
            }
            children.extend(rotations.values())
            run_ended = None
            deadline = time.monotonic() + 1500
            while any(p.poll() is None for p in [run, *rotations.values()]):
                if run_ended is None and run.poll() is not None:
                    run_ended = datetime.now(UTC)
                assert time.monotonic() < deadline, "rotations or the run did not finish"
                time.sleep(0.2)
            run_ended = run_ended or datetime.now(UTC)
            time.sleep(1)  # requests go on after the old keys are gone
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=30)
        stop_server(second)

    logs = {s: (tmp_path / f"rotate-{s}.log").read_text() for s in SERVICES}
    for s, p in rotations.items():
        assert p.returncode == 0, f"{s}: {logs[s][-3000:]}"
    assert run.returncode == 0, (tmp_path / "run.log").read_text()[-3000:]

    # Every request answered, by both servers.
    assert load.failures == [], load.failures[:5]
    assert set(load.answered) == {served_model.url, second.url} and sum(load.answered.values()) > 20

    # The rotations waited for what they found: both servers' gauges, the run, MLflow's restart.
    assert all(name in logs["serving"] for name in servers), logs["serving"]
    assert "waiting for: run" in logs["training"], logs["training"]
    journal = target.secrets.read(layout.rotation_journal_path("local", "training")).data
    assert datetime.fromisoformat(journal["finished_at"]) >= run_ended, "revoked before the run ended"
    assert "restarting mlflow" in logs["mlflow"], logs["mlflow"]
    assert mlflow.process().pid() not in (None, mlflow_pid), "MLflow was not restarted"

    # The run finished and is in MLflow; MLflow's artifact proxy works with its new key.
    published = json.loads(outcome.read_text())["publish"]
    from mlflow import MlflowClient

    client = MlflowClient(local_stack.mlflow_uri)
    assert client.get_model_version(published["model_name"], str(published["version"])).status == "READY"
    experiment = client.create_experiment(f"rotation-probe-{time.time_ns()}")
    probe_run = client.create_run(experiment)
    client.log_text(probe_run.info.run_id, "after rotation", "probe.txt")
    assert client.download_artifacts(probe_run.info.run_id, "probe.txt", str(tmp_path))

    # Every old key is refused now; every secret moved on by one version.
    for s in SERVICES:
        old, bucket_key, key = before[s].data, *PROBE[s]
        now = target.secrets.read(layout.secret_path("local", s))
        assert now.version == before[s].version + 1
        assert not s3_put_works(
            local_stack, old["s3_access_key"], old["s3_secret_key"], old[bucket_key], key
        ), s
    print(f"\nrequests answered: {load.answered}; rotation logs:\n" + "\n".join(logs.values()))
