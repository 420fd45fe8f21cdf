"""The gate against a real `bentoml serve` of the trained model: it passes the good candidate and blocks
degraded ones (the same unmodified server behind the fault proxy), each for the right reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spira.faults import Degradation, FaultProxy
from spira.stack import StackInfo
from spira.stack.predict_clients import client_env
from tests.fixtures.model import REPO, ServedModel, get_json

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gate_client(local_stack: StackInfo) -> dict[str, str]:
    """The gate's three variables on the test's stack (its Vault role logs in, its token goes on every upload)."""
    return client_env(local_stack, "gate")


def _gate(url: str, version: str, out: Path, client: dict[str, str], duration: int = 10) -> tuple[int, dict]:
    cmd = [
        sys.executable,
        "-m",
        "spira.cli",
        "gate",
        "--url",
        url,
        "--thresholds",
        "local",
        "--expect-model-version",
        version,
        "--duration",
        str(duration),
        "--users",
        "3",
        "--out",
        str(out),
    ]
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env={**os.environ, **client, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    verdict = json.loads((out / "verdict.json").read_text())
    return proc.returncode, verdict


def _failed_slos(verdict: dict) -> set[str]:
    return {c["slo"] for c in verdict["verdict"]["checks"] if not c["passed"]}


def test_the_gate_passes_the_real_model(
    served_model: ServedModel, gate_client: dict[str, str], tmp_path: Path
) -> None:
    code, verdict = _gate(served_model.url, served_model.version, tmp_path, gate_client)
    assert code == 0, verdict
    assert (tmp_path / "report.html").exists() and (tmp_path / "locust_stats.csv").exists()


@pytest.mark.parametrize(
    ("spec", "expected_failure"),
    [
        ("latency=2500", "latency_p95_ms"),
        ("errors=0.3", "error_ratio"),
        ("version=0-not-the-pinned-one", "correctness"),
    ],
)
def test_the_gate_blocks_a_degraded_candidate_for_the_right_reason(
    served_model: ServedModel, gate_client: dict[str, str], tmp_path: Path, spec: str, expected_failure: str
) -> None:
    # the real server runs without any fault; the fault proxy in front of it makes it a bad candidate
    with FaultProxy(served_model.url, Degradation.parse(spec)) as proxy:
        code, verdict = _gate(proxy.url, served_model.version, tmp_path, gate_client)
        forwarded = proxy.forwarded
    assert code == 1, verdict
    assert expected_failure in _failed_slos(verdict)
    assert forwarded > 0  # the answers the gate judged came from the real model
    # the server itself was never changed: it still serves the pinned version
    assert get_json(served_model.url + "/info")["model_version"] == served_model.version
