"""`spira evidence build` and `spira evidence show VERSION` on the real local stack: the bundle lies in
the declared evidence location of SeaweedFS under its content hash, is tagged on the MLflow version, and
`show` prints the card back after checking it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from infra.environments import declared
from spira.clinical.report import html_report
from spira.stack import StackInfo
from tests.fixtures.model import REPO, RegisteredModel
from tests.fixtures.verdicts import clinical_verdict

pytestmark = pytest.mark.integration
IMAGE = "127.0.0.1:5000/spira/model@sha256:" + "c" * 64


def spira(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spira.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_promotions_evidence_is_stored_attached_and_shown(
    local_stack: StackInfo, registered_model: RegisteredModel, tmp_path
):
    env = {**os.environ, **local_stack.service_env("training"), "PYTHONPATH": str(REPO)}
    verdict = clinical_verdict()
    clinical = tmp_path / "clinical"
    clinical.mkdir()
    (clinical / "verdict.json").write_text(json.dumps(verdict))
    (clinical / "report.html").write_text(html_report(verdict))
    version = registered_model.version

    built = spira(
        ["evidence", "build", "--version", version, "--image", IMAGE, "--clinical", str(clinical)], env
    )
    assert built.returncode == 0, built.stdout + built.stderr
    uri, _, digest = built.stdout.strip().splitlines()[-1].partition(" sha256:")
    bucket, prefix = declared().evidence_location(local_stack.env_name)
    assert uri == f"s3://{bucket}/{prefix}spira-respiratory/{version}/{digest}/"

    # really in the object store, under its content hash
    s3 = local_stack.s3_client()
    key = uri.removeprefix(f"s3://{bucket}/")
    manifest = s3.get_object(Bucket=bucket, Key=key + "manifest.json")["Body"].read()
    assert hashlib.sha256(manifest).hexdigest() == digest
    assert set(json.loads(manifest)["files"]) >= {
        "model_card.md",
        "model_card.html",
        "clinical-gate/report.html",
    }

    # attached to the MLflow version
    from mlflow.tracking import MlflowClient

    os.environ.update(local_stack.mlflow_operator_env())
    tags = MlflowClient(local_stack.mlflow_uri).get_model_version("spira-respiratory", version).tags
    assert (tags["evidence.uri"], tags["evidence.sha256"]) == (uri, digest)

    shown = spira(["evidence", "show", version], env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"# Model card: spira-respiratory v{version}" in shown.stdout
    assert IMAGE in shown.stdout and verdict["holdout"]["version"] in shown.stdout
    assert "| noise=hospital |" in shown.stdout
    assert f"evidence: {uri} (sha256:{digest}, content hash verified)" in shown.stdout

    missing = spira(["evidence", "show", "9999"], env)
    assert missing.returncode == 2 and "no evidence for spira-respiratory version 9999" in missing.stderr
