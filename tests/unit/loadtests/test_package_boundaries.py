"""The loadtests package stays small and outside the application: what it imports, how its image builds."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

PACKAGE = Path(__file__).resolve().parents[3] / "loadtests"
APPLICATION = {"spira", "spira_core", "training", "serving", "infra", "ci", "tests"}


def imported_top_levels() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(path.name)
    return found


def image_distributions() -> set[str]:
    """requirements.in names plus what they pull in directly (gevent comes with locust)."""
    names = [
        line.strip()
        for line in (PACKAGE / "requirements.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    dists = {n.lower() for n in names}
    for name in names:
        for req in metadata.requires(name) or []:
            if "extra ==" not in req:
                dists.add(Requirement(req).name.lower())
    return dists


# The gate's credential for /predict: one standard-library module of the application, which the image
# carries beside loadtests/ (loadtests/credential.py imports it, nothing else does).
CREDENTIAL = Path(__file__).resolve().parents[3] / "spira_core" / "predict_credential.py"


def test_loadtests_imports_no_application_code():
    offenders = {m: files for m, files in imported_top_levels().items() if m in APPLICATION}
    assert offenders == {"spira_core": {"credential.py"}}, "the gate talks to the service over HTTP only"


def test_the_credential_module_the_gate_carries_needs_only_the_standard_library():
    modules = set()
    for node in ast.walk(ast.parse(CREDENTIAL.read_text())):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    # PyJWT only for the local stack's signer (imported inside that function), never in a cluster
    assert modules - {"jwt", "__future__"} <= sys.stdlib_module_names
    containerfile = (PACKAGE / "Containerfile").read_text()
    assert (
        "COPY spira_core/predict_credential.py /opt/spira-gate/spira_core/predict_credential.py"
        in containerfile
    )


def test_every_third_party_import_of_loadtests_is_installed_in_its_image():
    installed = image_distributions()
    owners = metadata.packages_distributions()
    missing = {}
    for module, files in imported_top_levels().items():
        if module in sys.stdlib_module_names or module in {"loadtests", "__future__", "spira_core"}:
            continue
        if not {d.lower() for d in owners.get(module, [])} & installed:
            missing[module] = sorted(files)
    assert missing == {}, "add the distribution to loadtests/requirements.in (and the wheelhouse)"


def test_the_image_build_is_hermetic_and_runs_as_a_numeric_non_root_user():
    text = (PACKAGE / "Containerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    first_from = next(i for i, line in enumerate(instructions) if line.startswith("FROM"))
    assert "ARG BASE_IMAGE" in instructions[:first_from], "the base image is a build argument"
    assert all(line.startswith("FROM ${BASE_IMAGE}") for line in instructions if line.startswith("FROM"))
    assert re.search(r"pip install --no-index --find-links /wheels", text)
    user = [line.split()[1] for line in instructions if line.startswith("USER")][-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "runAsNonRoot can only verify a numeric uid"
    assert "SPIRA_GATE_CORPUS_DIR=" in text and "-m loadtests.audio" in text, "corpus built at build time"
