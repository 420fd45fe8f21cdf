"""`spira workflow play`: the rendered WorkflowTemplate's steps as containers of the training image (built
once per session, pushed to the loopback registry, run by digest) against the session's local stack.

One scenario, one real (short) training run in containers, on a small synthesized dataset of its own:
1. the play's train container is killed midway (podman kill, once it holds its run lease: logged in, the
   stage under way): the play fails naming train, exit 137;
2. the replay (the CLI, as an operator types it) reuses features (its objects untouched) and computes the
   rest, printing the table of steps, and exits 0 with the registered version;
3. `spira pipeline run` on the host with the same inputs, preset, epochs and seed, in a fresh bucket (so it
   computes everything itself), registers a version whose bundle is byte-identical to the played one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci.build import BuildOptions, PushedImage, build, push
from ci.podman import Podman
from spira.secrets.seed import read_secret
from spira.stack import StackInfo
from spira.workflow.play import RUN_LABEL, STEP_LABEL
from spira_core.run_lease import lease_prefix
from tests.e2e.test_image_delivery import podman, registry  # noqa: F401 (session fixtures)
from training.data.synth import SynthParams, synthesize
from training.stages.publish import MODEL_NAME

pytestmark = [pytest.mark.e2e, pytest.mark.container, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PRESET, EPOCHS = "fast", 4  # the fastest preset, a few epochs: the flow, not the model's quality
SPIRA = [sys.executable, "-m", "spira.cli"]
KILL_AFTER_LEASE_S = 1.0  # the train container is killed this long after its run lease appears


@pytest.fixture(scope="session")
def training_image(podman: Podman, registry: str) -> Iterator[PushedImage]:  # noqa: F811
    """The training image, built once per session (layers cached) and pushed: run by its digest."""
    built = build(podman, BuildOptions("training", registry), REPO, say=lambda _m: None)
    yield push(podman, built, registry)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # a seed of its own: no other test computed these features in the stack's bucket
    return synthesize(
        SynthParams(n=24, seed=2020), tmp_path_factory.mktemp("play") / "data"
    ).dataset_csv.parent


def _inputs(data: Path) -> list[str]:
    """The same inputs for the play and `spira pipeline run`."""
    return [
        *("--data", str(data / "dataset.csv"), "--noise", str(data / "noise.csv")),
        *("--preset", PRESET, "--epochs", str(EPOCHS)),
    ]


def _leases(stack: StackInfo, bucket: str) -> set[str]:
    listed = stack.s3_client().list_objects_v2(Bucket=bucket, Prefix=lease_prefix("training"))
    return {o["Key"] for o in listed.get("Contents", [])}


def _kill_train_midway(
    podman: Podman,  # noqa: F811
    stack: StackInfo,
    bucket: str,
    killed: list[str],
    stop: threading.Event,
) -> None:
    """Once the train container has read its secret and taken its run lease (its imports and Vault login
    done, the stage under way), kill it."""
    name, before = "", set()
    while not stop.is_set() and not name:
        name = podman.text("ps", "--filter", f"label={STEP_LABEL}=train", "--format", "{{.Names}}")
        before = _leases(stack, bucket)
        time.sleep(0.2)
    deadline = time.monotonic() + 300
    while not stop.is_set() and time.monotonic() < deadline:
        if _leases(stack, bucket) - before:
            time.sleep(KILL_AFTER_LEASE_S)
            if podman("kill", name.splitlines()[0], check=False).returncode == 0:
                killed.append(name.splitlines()[0])
            return
        time.sleep(0.2)


def _features_objects(stack: StackInfo, bucket: str) -> dict[str, tuple]:
    listed = stack.s3_client().list_objects_v2(Bucket=bucket, Prefix="pipeline/features/")
    return {o["Key"]: (o["ETag"], o["LastModified"]) for o in listed.get("Contents", [])}


def _bundle(stack: StackInfo, version: str, into: Path) -> dict[str, bytes]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(stack.mlflow_uri)  # as the operator (tests/fixtures/stack.py)
    run_id = client.get_model_version(MODEL_NAME, version).run_id
    folder = Path(client.download_artifacts(run_id, "model", str(into)))
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def played(podman: Podman, training_image: PushedImage, data: Path, local_stack: StackInfo, tmp_path_factory):  # noqa: F811
    from spira.workflow.play_cli import run_play

    bucket = read_secret(local_stack.vault_client(), "local", "training")["features_bucket"]
    found: list[str] = []
    stop = threading.Event()
    killer = threading.Thread(
        target=_kill_train_midway, args=(podman, local_stack, bucket, found, stop), daemon=True
    )
    killer.start()
    try:
        killed, _ = run_play(
            data / "dataset.csv",
            data / "noise.csv",
            PRESET,
            EPOCHS,
            image=training_image.ref,
            stack_home=str(local_stack.home),
            say=lambda _m: None,
        )
    finally:
        stop.set()
        killer.join(30)
    features_before = _features_objects(local_stack, bucket)

    start = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(REPO), "SPIRA_HOME": str(local_stack.home), "COLUMNS": "200"}
    replay = subprocess.run(
        [*SPIRA, "workflow", "play", *_inputs(data), "--image", training_image.ref],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return {
        "killed": killed,
        "killed_container": found,
        "features_before": features_before,
        "features_after": _features_objects(local_stack, bucket),
        "replay": replay,
        "replay_s": time.monotonic() - start,
        "bucket": bucket,
    }


def test_killing_the_train_container_fails_the_play_naming_train_and_runs_nothing_after_it(
    played,
    podman: Podman,  # noqa: F811
):
    killed = played["killed"]
    assert played["killed_container"], "the train container never ran"
    assert killed.failed is not None and killed.failed.name == "train", killed.steps
    assert killed.failed.exit_code == 137 and killed.version is None
    statuses = {s.name: s.status for s in killed.steps}
    assert statuses["features"] == "succeeded" and statuses["evaluate"] == statuses["publish"] == "not run"
    features = next(s for s in killed.steps if s.name == "features")
    assert features.reused is False, "fresh data: the first play computes the features in its container"
    # every step's container is removed, the killed one included
    left = podman.text("ps", "-a", "--filter", f"label={RUN_LABEL}", "--format", "{{.Names}}")
    assert not [n for n in left.splitlines() if n in played["killed_container"]]


def test_the_replay_reuses_the_features_untouched_computes_the_rest_and_registers_a_version(played):
    replay = played["replay"]
    assert replay.returncode == 0, replay.stdout[-3000:] + replay.stderr[-3000:]
    rows = {line.split("│")[1].strip(): line for line in replay.stdout.splitlines() if line.count("│") >= 5}
    assert "reused" in rows["features"] and "succeeded" in rows["features"]
    for step in ("train", "evaluate", "publish"):
        assert "computed" in rows[step] and "succeeded" in rows[step], rows[step]
    assert "cluster only" in rows["candidate"]
    assert played["features_after"] == played["features_before"] != {}, "features were written again"
    assert f"registered {MODEL_NAME} version " in replay.stdout


def test_the_played_bundle_is_byte_identical_to_spira_pipeline_run_with_the_same_inputs_and_seed(
    played, data: Path, local_stack: StackInfo, tmp_path: Path, monkeypatch
):
    replay = played["replay"]
    assert replay.returncode == 0, replay.stderr[-3000:]
    version = replay.stdout.rsplit(f"registered {MODEL_NAME} version ", 1)[1].split()[0]
    training = read_secret(local_stack.vault_client(), "local", "training")
    settings = tmp_path / "settings.json"
    # the same services, a fresh bucket: the host run finds nothing to reuse and computes every stage
    settings.write_text(
        json.dumps(
            {
                **training,
                "s3_access_key": local_stack.s3_access_key,
                "s3_secret_key": local_stack.s3_secret_key,
                "features_bucket": f"play-reference-{uuid.uuid4().hex[:8]}",
            }
        )
    )
    outcome = tmp_path / "outcome.json"
    host = subprocess.run(
        [
            *SPIRA,
            "pipeline",
            "run",
            *_inputs(data),
            *("--settings", str(settings), "--json-out", str(outcome)),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert host.returncode == 0, host.stdout[-2000:] + host.stderr[-3000:]
    reference = json.loads(outcome.read_text())
    assert not any(s["skipped"] for s in reference["stages"]), "the host run must compute, not reuse"
    reference_version = str(reference["publish"]["version"])
    assert reference_version != version
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(key, os.environ.get(key, ""))
    played_bundle = _bundle(local_stack, version, tmp_path / "played")
    host_bundle = _bundle(local_stack, reference_version, tmp_path / "host")
    assert set(played_bundle) >= {"bundle.json", "weights.bin", "weights.json", "feature_params.json"}
    differing = sorted(
        n for n in played_bundle.keys() | host_bundle.keys() if played_bundle.get(n) != host_bundle.get(n)
    )
    assert not differing, f"the played and the host bundle differ in {differing}"
