"""The gate runner without any server: import isolation, options, could-not-run paths, rendering."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtests import gate, slo
from loadtests.judge import Check, Verdict

REPO = Path(__file__).resolve().parents[3]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_importing_the_gate_imports_neither_locust_nor_gevent():
    # Locust monkey-patches the process with gevent on import; the gate must stay a plain process.
    code = (
        "import sys, loadtests.gate, loadtests.judge, loadtests.probe, loadtests.audio; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'locust', 'gevent'}); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_command_line_options_override_the_thresholds_files_load_shape():
    t = slo.load("local")
    config = gate.GateConfig(url="http://127.0.0.1:1", users=2, duration_s=3.0)
    shape = gate._load_shape(config, t)
    assert (shape.users, shape.duration_s) == (2, 3.0)
    assert (shape.spawn_rate, shape.max_requests) == (t.load.spawn_rate, t.load.max_requests)


def test_the_locust_command_is_headless_bounded_and_writes_every_report(tmp_path):
    shape = slo.LoadShape(users=3, spawn_rate=1.5, duration_s=4.4, max_requests=99)
    cmd = gate._locust_command("http://127.0.0.1:3000", shape, tmp_path)
    joined = " ".join(cmd)
    for fragment in (
        "-m locust",
        "--headless",
        "-u 3",
        "-r 1.5",
        "--run-time 4s",
        f"--csv {tmp_path}/locust",
        f"--html {tmp_path}/report.html",
        f"--json-file {tmp_path}/locust_stats",
    ):
        assert fragment in joined
    assert cmd[cmd.index("-f") + 1] == str(gate.LOCUSTFILE)


@pytest.mark.parametrize("url", ["127.0.0.1:3000", "ftp://127.0.0.1/", "http://", "http://host:notaport"])
def test_a_malformed_url_cannot_run(tmp_path, url):
    result = gate.run_gate(gate.GateConfig(url=url, out_dir=tmp_path))
    assert result.exit_code == gate.COULD_NOT_RUN
    assert url in result.error or "port" in result.error


def test_a_non_positive_option_cannot_run_and_names_the_option(tmp_path):
    result = gate.run_gate(gate.GateConfig(url="http://127.0.0.1:1", users=0, out_dir=tmp_path))
    assert result.exit_code == gate.COULD_NOT_RUN
    assert "--users" in result.error


def test_an_unreachable_server_cannot_run_within_the_ready_timeout_and_says_so_in_the_verdict(tmp_path):
    started = time.monotonic()
    result = gate.run_gate(
        gate.GateConfig(url=f"http://127.0.0.1:{closed_port()}", out_dir=tmp_path, ready_timeout_s=1.0)
    )
    assert time.monotonic() - started < 4
    assert result.exit_code == gate.COULD_NOT_RUN
    assert "server unreachable" in result.error and "Connection refused" in result.error
    written = json.loads((tmp_path / "verdict.json").read_text())
    assert written["outcome"] == "could-not-run" and written["exit_code"] == 2


def test_an_invalid_thresholds_file_cannot_run_before_contacting_any_server(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("schema_version: 1\nenvironment: x\nslo: {}\nload: {}\n")
    started = time.monotonic()
    # the port is closed: reaching the probe would take the whole ready timeout
    result = gate.run_gate(
        gate.GateConfig(
            url=f"http://127.0.0.1:{closed_port()}",
            thresholds=bad,
            out_dir=tmp_path / "out",
            ready_timeout_s=30,
        )
    )
    assert time.monotonic() - started < 2
    assert result.exit_code == gate.COULD_NOT_RUN
    assert "field 'slo.latency_p95_ms'" in result.error


def verdict_result(passed: bool) -> gate.GateResult:
    checks = [
        Check("latency_p95_ms", 912.0, 300.0, "<=", passed, "p95 of 40 valid uploads is 912 ms", "ms"),
        Check("error_ratio", 0.125, 0.01, "<=", passed, "5 of 40 requests failed (12.50%)", ""),
    ]
    return gate.GateResult(
        exit_code=gate.PASS if passed else gate.FAIL,
        url="http://x:1",
        verdict=Verdict(passed, checks),
        thresholds=slo.load("staging"),
    )


def test_the_text_verdict_shows_measured_threshold_result_and_reason_for_each_slo():
    text = gate.format_text(verdict_result(False))
    assert text.splitlines()[0].startswith("GATE FAIL (staging): latency_p95_ms, error_ratio not met")
    row = next(line for line in text.splitlines() if line.startswith("latency_p95_ms"))
    assert "912 ms" in row and "<= 300 ms" in row and "FAIL" in row and "p95 of 40" in row
    assert "12.50%" in text and "<= 1.00%" in text


def test_a_passing_verdict_headline_says_pass():
    assert gate.headline(verdict_result(True)).startswith("GATE PASS (staging)")


def test_the_command_line_defaults_are_the_configs_own():
    parsed = gate.config_from_args(gate.parser().parse_args(["--url", "http://x:1"]))
    assert parsed == gate.GateConfig(url="http://x:1")


def test_each_load_option_overrides_the_load_shape_field_of_its_name():
    args = [
        "--url",
        "http://x:1",
        "--users",
        "7",
        "--spawn-rate",
        "0.5",
        "--duration",
        "9",
        "--max-requests",
        "11",
    ]
    shape = gate._load_shape(gate.config_from_args(gate.parser().parse_args(args)), slo.load("local"))
    assert (shape.users, shape.spawn_rate, shape.duration_s, shape.max_requests) == (7, 0.5, 9.0, 11)
