"""`spira demo` end to end in a reduced mode (no images: those have their own e2e tests), on the session's
stack and with the session's dataset, so completed pipeline stages are reused from S3."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from spira.stack import StackInfo
from tests.fixtures.model import REPO, SYNTH_N, SYNTH_SEED, TEST_EPOCHS, RegisteredModel

pytestmark = pytest.mark.e2e


def _demo(stack: StackInfo, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPIRA_HOME": str(stack.home), "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "spira.cli",
            "demo",
            "--no-images",
            "--n",
            str(SYNTH_N),
            "--seed",
            str(SYNTH_SEED),
            "--epochs",
            str(TEST_EPOCHS),
            "--gate-duration",
            "8",
            *args,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def test_the_demo_gates_and_promotes_a_good_candidate_then_blocks_a_degraded_one(
    local_stack: StackInfo, registered_model: RegisteredModel
) -> None:
    good = _demo(local_stack)
    assert good.returncode == 0, good.stdout[-4000:] + good.stderr[-2000:]
    assert "gate verdict" in good.stdout and "PASS" in good.stdout
    # the session already trained on this dataset: features, train and evaluate are reused, not recomputed
    assert (
        "stages reused" in good.stdout
        and "features" in good.stdout.split("stages reused", 1)[1].splitlines()[0]
    )
    assert "clinical gate" in good.stdout and "PASS on holdout" in good.stdout
    client = MlflowClient(local_stack.mlflow_uri)
    champion = client.get_model_version_by_alias("spira-respiratory", "champion")
    # the session's weights, registered again by a publish that judged them on the demo's frozen holdout
    assert (
        champion.tags["train_key"]
        == client.get_model_version("spira-respiratory", registered_model.version).tags["train_key"]
    )
    assert champion.tags["clinical.holdout_version"]
    champion = champion.version

    bad = _demo(local_stack, "--degrade", "version")
    assert bad.returncode == 1, bad.stdout[-4000:]
    assert "FAIL" in bad.stdout and "champion is unchanged" in bad.stdout
    assert "fault proxy" in bad.stdout  # the preview ran unmodified; the faults came from the proxy
    assert client.get_model_version_by_alias("spira-respiratory", "champion").version == champion

    # a candidate trained on half-flipped labels: served fine (the load gate passes), clinically worse
    worse = _demo(local_stack, "--degrade", "accuracy")
    assert worse.returncode == 1, worse.stdout[-4000:]
    facts = worse.stdout.split("SPIRA demo", 1)[-1]
    assert "gate verdict" in facts and "PASS" in facts.split("gate verdict", 1)[1].splitlines()[0]
    assert "FAIL on holdout" in facts.split("clinical gate", 1)[1].splitlines()[0]
    assert "champion is unchanged" in worse.stdout
    assert client.get_model_version_by_alias("spira-respiratory", "champion").version == champion
