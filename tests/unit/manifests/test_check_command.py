"""`spira manifests check` without a tool it needs says so in one line naming the make target."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_a_missing_checkov_is_one_line_naming_the_make_target_not_a_traceback(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "spira.cli", "manifests", "check"],
        cwd=REPO,
        env={**os.environ, "SPIRA_CHECKOV": str(tmp_path / "no-checkov"), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        f"error: checkov not found at {tmp_path / 'no-checkov'}: run `make manifests-deps`"
    ]
