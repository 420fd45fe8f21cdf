"""The workflow's steps as their containers run them, on the host against the session's local stack: the
entry point and arguments are the rendered WorkflowTemplate's (`spira pipeline <stage> ...`, the local
paths in place of the data artifact's), the settings come from Vault through the training workload's three
variables, and the code is the training image's files of the project (ci/build.py TRAINING_CONTEXT),
copied once. No image is built: the container itself is the e2e play's business
(tests/e2e/test_workflow_play.py); here the object store fails under a step, and the schedule's check runs
against the real store.

One scenario on a small synthesized dataset of its own (one epoch of the fast preset):
1. the features step computes; the train step starts and, once it holds its run lease (logged in, the stage
   under way), SeaweedFS is stopped under it (the step is paused for the instant of the stop, so the stop
   lands inside the step): the step exits 2 with one `error: S3 at ...` line, and train is not marked
   complete; the schedule's check, run while the store is down, fails the same way (never `unchanged`);
2. SeaweedFS is restarted; the replay of the DAG's steps reuses features (its objects untouched), computes
   the rest and registers a version;
3. the scheduled run's first step (`spira pipeline fingerprint --check`) then says `unchanged`; with a
   labelled recording added to the data it says `changed`, every stage to run from new features.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci.build import TRAINING_CONTEXT
from spira.secrets.seed import read_secret
from spira.stack import LocalStack, StackInfo
from spira.stack.net import wait_until
from spira.workflow import render_workflow_objects
from spira.workflow.play import find_template, step_arguments
from spira.workflow.render import CHECK
from spira_core.run_lease import lease_prefix
from training.data.synth import SynthParams, synthesize
from training.pipeline import STAGE_NAMES

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
IMAGE = "127.0.0.1:5000/spira/training@sha256:" + "0" * 64  # rendering only: nothing runs the image
PRESET, EPOCHS = "fast", 1
STOP_AFTER_LEASE_S = 1.0
STAGE_LINE = re.compile(r"^(\w+) (\w+): (complete|to run)$")  # what `spira pipeline fingerprint` prints


def step_command(name: str, data: Path, outcome: Path) -> list[str]:
    """The rendered step's command line, with this host's paths for the data artifact and the outcome."""
    template = find_template(render_workflow_objects("local", IMAGE))
    step = next(t for t in template["spec"]["templates"] if t["name"] == name)
    artifact = step["inputs"]["artifacts"][0]["path"].rstrip("/") + "/"
    written = step["outputs"]["parameters"][0]["valueFrom"]["path"]

    def local(arg: str) -> str:
        if arg.startswith(artifact):
            return str(data / arg.removeprefix(artifact))
        return str(outcome) if arg == written else arg

    assert step["container"]["command"] == ["spira"]
    args = step_arguments(step["container"]["args"], PRESET, EPOCHS)
    return [sys.executable, "-m", "spira.cli", *map(local, args)]


def image_code(into: Path) -> Path:
    """The files the training image holds of the project (ci/build.py's TRAINING_CONTEXT), copied once:
    the steps run that code and nothing else of the checkout (an edit to the checkout meanwhile changes
    no key between two steps, as it changes nothing in a built image)."""
    for source in TRAINING_CONTEXT:
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, into / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (into / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / source, into / source)
    return into


def step_env(stack: StackInfo, code: Path) -> dict[str, str]:
    return {**os.environ, **stack.service_env("training"), "PYTHONPATH": str(code)}


def run_step(
    stack: StackInfo, code: Path, name: str, data: Path, outcome: Path
) -> subprocess.CompletedProcess:
    return subprocess.run(
        step_command(name, data, outcome),
        cwd=code,
        env=step_env(stack, code),
        capture_output=True,
        text=True,
        timeout=600,
    )


def objects(stack: StackInfo, bucket: str, prefix: str) -> dict[str, str]:
    listed = stack.s3_client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o["ETag"] for o in listed.get("Contents", [])}


def objects_readable(stack: StackInfo, bucket: str) -> bool:
    """SeaweedFS lists buckets before its volume server is back: recovered means an object reads again."""
    try:
        key = next(iter(objects(stack, bucket, "pipeline/features/")))
        stack.s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return True
    except Exception:
        return False


def stop_the_store_under_the_train_step(
    stack: StackInfo, handle: LocalStack, code: Path, bucket: str, data: Path, outcome: Path
) -> tuple[subprocess.CompletedProcess, bool]:
    """Start the train step; once its run lease appears, pause it, stop SeaweedFS, let it go on."""
    before = objects(stack, bucket, lease_prefix("training"))
    command = step_command("train", data, outcome)
    proc = subprocess.Popen(
        command,
        cwd=code,
        env=step_env(stack, code),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stopped = False
    try:
        leased = wait_until(
            lambda: bool(set(objects(stack, bucket, lease_prefix("training"))) - set(before)),
            300,
            interval_s=0.2,
            abort=lambda: proc.poll() is not None,
        )
        if leased:
            time.sleep(STOP_AFTER_LEASE_S)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGSTOP)
                try:
                    stopped = handle.s3.process().stop()
                finally:
                    os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(command, proc.returncode, out, err), stopped


def restart_the_store(stack: StackInfo, handle: LocalStack, bucket: str) -> None:
    s3 = handle.s3
    if not s3.answering():
        s3.process().start()
    assert wait_until(s3.healthy, 90), "SeaweedFS did not come back"
    assert wait_until(lambda: objects_readable(stack, bucket), 120), "SeaweedFS serves no object again"


@pytest.fixture(scope="module")
def scenario(local_stack: StackInfo, local_stack_handle: LocalStack, tmp_path_factory) -> Iterator[dict]:
    work = tmp_path_factory.mktemp("steps")
    # a seed of its own: no other test computed these stages in the stack's bucket
    data = synthesize(SynthParams(n=24, seed=4711), work / "data").dataset_csv.parent
    bucket = read_secret(local_stack.vault_client(), "local", "training")["features_bucket"]
    code = image_code(work / "image")
    result: dict = {"data": data, "bucket": bucket, "work": work, "code": code}
    features = run_step(local_stack, code, "features", data, work / "features.json")
    assert features.returncode == 0, features.stderr[-3000:]
    result["features_key"] = json.loads((work / "features.json").read_text())["stages"][0]["key"]
    try:
        result["failed"], result["stopped"] = stop_the_store_under_the_train_step(
            local_stack, local_stack_handle, code, bucket, data, work / "train-failed.json"
        )
        # the schedule's check while the store is still down
        result["check_down"] = run_step(local_stack, code, CHECK, data, work / "check-down")
    finally:
        restart_the_store(local_stack, local_stack_handle, bucket)
    result["features_before"] = objects(local_stack, bucket, "pipeline/features/")
    result["train_before"] = objects(local_stack, bucket, "pipeline/train/")
    result["replay"] = {}
    for name in STAGE_NAMES:
        step = run_step(local_stack, code, name, data, work / f"{name}.json")
        result["replay"][name] = step
        if step.returncode != 0:
            break
    result["features_after"] = objects(local_stack, bucket, "pipeline/features/")
    result["train_after"] = objects(local_stack, bucket, "pipeline/train/")
    yield result
    shutil.rmtree(work, ignore_errors=True)


def outcome(scenario: dict, name: str) -> dict:
    step = scenario["replay"][name]
    assert step.returncode == 0, step.stdout[-2000:] + step.stderr[-3000:]
    return json.loads((scenario["work"] / f"{name}.json").read_text())


def test_the_object_store_stopped_during_the_train_step_fails_it_with_one_clear_line_and_exit_2(scenario):
    failed = scenario["failed"]
    assert scenario["stopped"], "SeaweedFS was not stopped while the train step ran: " + failed.stderr[-2000:]
    assert failed.returncode == 2, failed.stderr[-3000:]
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: S3 at http://127.0.0.1:"), failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    assert not (scenario["work"] / "train-failed.json").exists(), "a failed step wrote an outcome"


def test_the_failed_train_step_marks_nothing_complete_and_leaves_no_object_the_replay_writes_otherwise(
    scenario,
):
    train_key = outcome(scenario, "train")["stages"][0]["key"]
    prefix = f"pipeline/train/{train_key}/"
    left = {k: v for k, v in scenario["train_before"].items() if k.startswith(prefix)}
    assert f"{prefix}manifest.json" not in left, "the interrupted stage is marked complete"
    written = {k: v for k, v in scenario["train_after"].items() if k.startswith(prefix)}
    assert f"{prefix}manifest.json" in written
    # whatever the failed step got into the store before the stop is whole: the replay's bytes exactly
    assert {k: written.get(k) for k in left} == left


def test_after_the_store_is_back_the_replay_reuses_the_features_untouched_and_registers_a_version(scenario):
    work = [(name, outcome(scenario, name)["stages"][0]["skipped"]) for name in STAGE_NAMES]
    assert work == [("features", True), ("train", False), ("evaluate", False), ("publish", False)]
    assert outcome(scenario, "features")["stages"][0]["key"] == scenario["features_key"]
    assert scenario["features_after"] == scenario["features_before"], "features were written again"
    assert outcome(scenario, "publish")["publish"]["version"]
    assert "registered spira-respiratory version " in scenario["replay"]["publish"].stdout


def test_with_the_store_down_the_scheduled_check_fails_rather_than_answer_unchanged(scenario):
    down = scenario["check_down"]
    assert down.returncode == 2 and down.stdout.strip() == "", down.stdout + down.stderr[-2000:]
    assert [line for line in down.stderr.splitlines() if line.startswith("error: S3 at http://127.0.0.1:")]
    assert not (scenario["work"] / "check-down").exists(), "the check wrote a result without the store"


def test_the_scheduled_check_says_unchanged_after_the_run_and_changed_once_a_labelled_file_is_added(
    scenario, local_stack: StackInfo, tmp_path: Path
):
    outcome(scenario, "publish")  # the run completed
    same = run_step(local_stack, scenario["code"], CHECK, scenario["data"], tmp_path / "same")
    assert same.returncode == 0 and same.stdout.strip() == "unchanged", same.stderr[-2000:]
    assert (tmp_path / "same").read_text() == "unchanged"

    # the bucket's labelled data with one more labelled recording
    data = tmp_path / "data"
    shutil.copytree(scenario["data"], data)
    more = synthesize(SynthParams(n=2, seed=4712), tmp_path / "more")
    with open(more.dataset_csv, newline="") as fh:
        row = next(csv.DictReader(fh))
    shutil.copy(more.out_dir / row["file_path"], data / "clips" / "added.wav")
    with open(data / "dataset.csv", "a", newline="") as fh:
        csv.DictWriter(fh, fieldnames=list(row)).writerow({**row, "file_path": "clips/added.wav"})
    changed = run_step(local_stack, scenario["code"], CHECK, data, tmp_path / "changed")
    assert changed.returncode == 0 and changed.stdout.strip() == "changed", changed.stderr[-2000:]

    # the `changed` branch runs the whole DAG: every stage is to run, from new features
    stages = [m.groups() for m in map(STAGE_LINE.match, changed.stderr.splitlines()) if m]
    assert [(name, state) for name, _, state in stages] == [(n, "to run") for n in STAGE_NAMES]
    assert stages[0][1] != scenario["features_key"]
