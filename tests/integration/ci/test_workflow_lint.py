"""The CI definitions and Containerfiles pass the linters a reviewer would run: actionlint and checkov."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
WORKFLOWS = sorted((REPO / ".github/workflows").glob("*.yml"))
CHECKOV = REPO / ".venv-checkov/bin/checkov"
# The gate image is a Job that runs once and exits: a HEALTHCHECK has nothing to probe. Both images take
# their base as a build argument (pinned by digest by CI), which checkov reads as an unpinned tag.
LOADTEST_SKIPS = "CKV_DOCKER_2,CKV_DOCKER_7"


def checkov(*args: str) -> list[dict]:
    if not CHECKOV.exists():
        pytest.fail("checkov is not installed: run `make manifests-deps` (make test does)")
    proc = subprocess.run(
        [str(CHECKOV), *args, "--compact", "--quiet", "-o", "json"], capture_output=True, text=True
    )
    data = json.loads(proc.stdout)
    return data if isinstance(data, list) else [data]


def failed(reports: list[dict]) -> list[str]:
    return [
        f"{f['check_id']} {f['file_path']}: {f['check_name']}"
        for r in reports
        for f in r["results"]["failed_checks"]
    ]


def test_there_are_workflows_for_build_and_test_and_for_promotion():
    assert {p.name for p in WORKFLOWS} >= {"build-and-test.yml", "promote.yml"}


def test_the_workflows_pass_actionlint():
    binary = Path(sys.executable).parent / "actionlint"
    if not binary.exists():
        binary = Path(shutil.which("actionlint") or "actionlint")
    proc = subprocess.run([str(binary), *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path: Path):
    broken = tmp_path / ".github/workflows/broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    binary = Path(sys.executable).parent / "actionlint"
    assert subprocess.run([str(binary), str(broken)], capture_output=True).returncode != 0


def test_the_workflows_pass_checkov():
    reports = checkov("-d", str(REPO / ".github/workflows"), "--framework", "github_actions")
    assert sum(r["summary"]["passed"] for r in reports) > 0
    assert failed(reports) == []


def test_the_containerfiles_pass_checkov(tmp_path: Path):
    # checkov recognises Dockerfiles by name: scan copies named like one.
    model = tmp_path / "model.Dockerfile"
    loadtest = tmp_path / "loadtest.Dockerfile"
    shutil.copy(REPO / "serving/Containerfile", model)
    shutil.copy(REPO / "loadtests/Containerfile", loadtest)
    assert failed(checkov("-f", str(model), "--framework", "dockerfile")) == []
    intake = tmp_path / "intake.Dockerfile"
    shutil.copy(REPO / "intake/Containerfile", intake)
    assert failed(checkov("-f", str(intake), "--framework", "dockerfile")) == []
    assert (
        failed(checkov("-f", str(loadtest), "--framework", "dockerfile", "--skip-check", LOADTEST_SKIPS))
        == []
    )
