"""`spira gate clinical` against real `bentoml serve` servers of two real models on one frozen holdout.

The session's model (tests/fixtures/model.py) is the baseline; a second model is trained on the same data
with half its training labels flipped (`--label-noise 0.5`, a real training run, its features reused).
The gate passes a candidate that is the baseline itself and fails the flipped-label one, with bootstrap
intervals and the recording-condition strata in verdict.json and the HTML report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from spira.stack import StackInfo
from spira.stack.predict_clients import client_env
from tests.fixtures.model import (
    REPO,
    TEST_EPOCHS,
    RegisteredModel,
    ServedModel,
    pipeline_run_args,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.integration
SPIRA = [sys.executable, "-m", "spira.cli"]


def _spira(args: list[str], env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*SPIRA, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(out: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def frozen_holdout(tmp_path_factory, local_stack: StackInfo) -> Path:
    """A second synthetic draw frozen with hospital-noise copies, kept local (--no-upload: the session's
    features bucket stays without a current holdout, which other tests' publish would judge on)."""
    work = tmp_path_factory.mktemp("holdout")
    env = {**os.environ, **local_stack.service_env("training"), "PYTHONPATH": str(REPO)}
    _ok(
        _spira(
            ["data", "synth", "--out", str(work / "src"), "--n", "40", "--seed", "99", "--n-noise", "4"], env
        )
    )
    data = ["--data", str(work / "src" / "dataset.csv"), "--noise", str(work / "src" / "noise.csv")]
    _ok(_spira(["holdout", "freeze", *data, "--out", str(work / "frozen"), "--no-upload"], env))
    return work / "frozen" / "dataset.csv"


@pytest.fixture(scope="module")
def worse_model(
    local_stack: StackInfo, registered_model: RegisteredModel, frozen_holdout: Path, tmp_path_factory
) -> Iterator[ServedModel]:
    work = tmp_path_factory.mktemp("worse")
    env = {**os.environ, **local_stack.service_env("training"), "PYTHONPATH": str(REPO)}
    args = pipeline_run_args(registered_model.data_dir, TEST_EPOCHS, work / "outcome.json")
    _ok(_spira([*args, "--label-noise", "0.5", "--holdout", str(frozen_holdout)], env, timeout=1500))
    outcome = json.loads((work / "outcome.json").read_text())
    publish = outcome["publish"]
    assert publish["holdout_version"] and publish["clinical_verdict"] in ("PASS", "FAIL")
    model = RegisteredModel(
        str(publish["version"]), local_stack.mlflow_uri, registered_model.data_dir, outcome
    )
    home = Path(tempfile.mkdtemp(prefix="spira-serve-worse-"))
    served = start_server(local_stack, model, home)
    try:
        yield served
    finally:
        stop_server(served)
        shutil.rmtree(home, ignore_errors=True)


def _gate(
    stack: StackInfo, candidate: str, holdout: Path, out: Path, *extra: str, env: dict | None = None
) -> tuple[int, str]:
    """The gate as the stack's gate client (its Vault role logs in, its token goes on every request)."""
    env = {
        **os.environ,
        **client_env(stack, "gate"),
        **(env or {}),
        "PYTHONPATH": str(REPO),
        "COLUMNS": "200",
    }
    proc = _spira(
        ["gate", "clinical", "--url", candidate, "--holdout", str(holdout), *extra, "--out", str(out)], env
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_the_clinical_gate_passes_a_candidate_equal_to_its_baseline_and_fails_a_flipped_label_one(
    local_stack: StackInfo,
    served_model: ServedModel,
    worse_model: ServedModel,
    frozen_holdout: Path,
    tmp_path: Path,
) -> None:
    code, output = _gate(
        local_stack, served_model.url, frozen_holdout, tmp_path / "same", "--baseline-url", served_model.url
    )
    assert code == 0, output
    same = json.loads((tmp_path / "same" / "verdict.json").read_text())
    assert same["verdict"] == "PASS" and same["candidate"]["model_version"] == served_model.version
    strata = {row["stratum"]: row for row in same["strata"]}
    assert {"overall", "noise=clean", "noise=hospital", "sample_rate=48000", "channels=1"} <= set(strata)
    auc = strata["overall"]["metrics"]["auc"]
    assert auc["difference"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert auc["candidate"]["low"] <= auc["candidate"]["value"] <= auc["candidate"]["high"]

    code, output = _gate(
        local_stack, worse_model.url, frozen_holdout, tmp_path / "worse", "--baseline-url", served_model.url
    )
    assert code == 1, output
    worse = json.loads((tmp_path / "worse" / "verdict.json").read_text())
    assert worse["verdict"] == "FAIL" and worse["reasons"], worse["reasons"]
    assert worse["holdout"]["sha256"] == same["holdout"]["sha256"]
    assert worse["baseline"]["model_version"] == served_model.version
    report = (tmp_path / "worse" / "report.html").read_text()
    assert "<svg" in report and "noise=hospital" in report and "FAIL" in report
    assert "clinical gate: FAIL" in output or "FAIL" in output


def test_without_a_baseline_url_a_champion_with_no_result_on_this_holdout_stops_the_gate_before_scoring(
    served_model: ServedModel, frozen_holdout: Path, local_stack: StackInfo, tmp_path: Path
) -> None:
    """The session's model was published without a holdout: as champion it has no recorded result on this
    one, and two models are only compared on the same holdout version (exit 2, not a verdict)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(local_stack.mlflow_uri)
    aliases = client.get_registered_model("spira-respiratory").aliases
    before = aliases.get("champion") if isinstance(aliases, dict) else None
    client.set_registered_model_alias("spira-respiratory", "champion", served_model.version)
    try:
        env = {**local_stack.mlflow_operator_env(), "MLFLOW_TRACKING_URI": local_stack.mlflow_uri}
        code, output = _gate(local_stack, served_model.url, frozen_holdout, tmp_path / "recorded", env=env)
    finally:  # the session's registry as it was
        if before:
            client.set_registered_model_alias("spira-respiratory", "champion", str(before))
        else:
            client.delete_registered_model_alias("spira-respiratory", "champion")
    assert code == 2, output
    assert f"champion v{served_model.version} has no recorded clinical result" in output
    assert not (tmp_path / "recorded" / "verdict.json").exists()
