"""The gate's two command lines, as a person or the AnalysisTemplate Job runs them: exit 0, 1 or 2."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.integration.loadtests.conftest import EXPECTED_VERSION, TEST_SLO

REPO = Path(__file__).resolve().parents[3]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: list[str], timeout: float = 90) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_spira_gate_passes_a_healthy_candidate_with_a_verdict_table(
    fake_server, thresholds_file, corpus_dir, tmp_path
):
    server = fake_server()
    done = run(
        [
            "-m",
            "spira.cli",
            "gate",
            "--url",
            server.url,
            "--users",
            "3",
            "--spawn-rate",
            "3",
            "--duration",
            "3",
            "--thresholds",
            str(thresholds_file),
            "--out",
            str(tmp_path / "out"),
            "--corpus-dir",
            str(corpus_dir),
        ]
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GATE PASS (test)" in done.stdout
    for slo in ("latency_p95_ms", "latency_p99_ms", "error_ratio", "min_rps", "correctness"):
        assert slo in done.stdout
    # no --expect-model-version: the gate read it from the first answer and says so
    assert f"expected model_version '{EXPECTED_VERSION}' was read from the first valid answer" in done.stdout
    verdict = json.loads((tmp_path / "out" / "verdict.json").read_text())
    assert verdict["expected_model_version_source"].startswith("the first valid answer")
    assert (tmp_path / "out" / "report.html").exists()


def test_the_image_entry_point_fails_a_candidate_with_server_errors_with_exit_1(
    fake_server, thresholds_file, corpus_dir, tmp_path
):
    server = fake_server(error_fraction=0.25)
    done = run(
        [
            "-m",
            "loadtests.gate",
            "--url",
            server.url,
            "--thresholds",
            str(thresholds_file),
            "--expect-model-version",
            EXPECTED_VERSION,
            "--out",
            str(tmp_path / "out"),
            "--corpus-dir",
            str(corpus_dir),
        ]
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[0].startswith("GATE FAIL (test): error_ratio not met")
    row = next(line for line in done.stdout.splitlines() if line.startswith("error_ratio"))
    assert "FAIL" in row and "HTTP 500" in row


def test_an_unknown_url_exits_2_quickly(tmp_path):
    started = time.monotonic()
    done = run(
        [
            "-m",
            "spira.cli",
            "gate",
            "--url",
            f"http://127.0.0.1:{closed_port()}",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    assert "server unreachable" in done.stdout
    assert elapsed < 12, f"took {elapsed:.1f} s"  # the default readiness probe gives up after 5 s


def test_an_unresolvable_host_exits_2_quickly(tmp_path):
    started = time.monotonic()
    done = run(
        [
            "-m",
            "loadtests.gate",
            "--url",
            "http://spira-preview.invalid:3000",
            "--ready-timeout",
            "2",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "server unreachable" in done.stdout
    assert time.monotonic() - started < 10


def test_an_invalid_thresholds_file_exits_2_naming_the_field_and_sends_no_load(fake_server, tmp_path):
    server = fake_server()
    document = yaml.safe_load(yaml.safe_dump(TEST_SLO))
    document["slo"]["max_error_ratio"] = "1%"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(document))
    done = run(
        [
            "-m",
            "spira.cli",
            "gate",
            "--url",
            server.url,
            "--thresholds",
            str(bad),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "field 'slo.max_error_ratio'" in done.stdout.replace("\n", "")
    assert server.predict_requests == 0
    verdict = json.loads((tmp_path / "out" / "verdict.json").read_text())
    assert verdict["outcome"] == "could-not-run" and "slo.max_error_ratio" in verdict["error"]
