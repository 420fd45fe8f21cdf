"""The layer contracts (`make lint` runs import-linter with pyproject.toml's [tool.importlinter]) hold on
the tree, and each of the four leaks the architecture review found breaks them when planted again."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
# the packages the contracts name: pyproject.toml's root_packages, read where they are declared
PACKAGES = tuple(
    tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]
)
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's Python packages and pyproject.toml, copied: leaks are planted in the copy."""
    root = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.bin")
        )
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120
    )


def test_the_tree_keeps_every_layer_contract(tree: Path) -> None:
    out = lint_imports(tree)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "leak", "broken"),
    [
        ("serving/leak.py", "from spira.stack import LocalStack", "serving is not allowed to import spira"),
        ("ci/leak.py", "from tests.fixtures import stack", "ci is not allowed to import tests"),
        (
            "benchmarks/leak.py",
            "from tests.fakes import training",
            "benchmarks is not allowed to import tests",
        ),
        (
            "training/stages/leak.py",
            "from spira_core.fastpath.model import FastSpiraConvV2",
            "training is not allowed to import spira_core.fastpath",
        ),
    ],
)
def test_each_leak_the_review_found_breaks_a_contract(
    tree: Path, module: str, leak: str, broken: str
) -> None:
    planted = tree / module
    planted.write_text(f"def later() -> None:\n    {leak}  # a lazy import counts too\n")
    try:
        out = lint_imports(tree)
    finally:
        planted.unlink()
    assert out.returncode != 0
    assert broken in out.stdout, out.stdout[-3000:]
