"""The training images' Containerfiles (CPU and GPU) pass checkov like the other images' (no skip list: the
base-image argument is skipped inline, CI pins it by digest)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.ci.test_workflow_lint import REPO, checkov, failed


@pytest.mark.parametrize("containerfile", ["training/Containerfile", "training/Containerfile.gpu"])
def test_the_training_containerfile_passes_checkov(containerfile: str, tmp_path: Path):
    # checkov recognises Dockerfiles by name: scan a copy named like one
    copy = tmp_path / "training.Dockerfile"
    shutil.copy(REPO / containerfile, copy)
    reports = checkov("-f", str(copy), "--framework", "dockerfile")
    assert sum(r["summary"]["passed"] for r in reports) > 0
    assert failed(reports) == []
