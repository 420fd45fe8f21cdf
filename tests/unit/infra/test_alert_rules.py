"""The alerting rules (infra/monitoring/spira-rules.yaml): unit-tested with promtool against synthetic
series, and handed to the cluster's Prometheus by the Monitoring component."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from infra.monitoring import RULES_FILE
from infra.offline import Plan
from tests.fakes.infra import where

RULE_TESTS = Path(__file__).parent / "data" / "spira-rules.test.yaml"
PROMTOOL_MISSING = "promtool not found: `make sysdeps` installs it (Debian package prometheus)"


def _promtool(*args: str) -> subprocess.CompletedProcess:
    promtool = shutil.which("promtool")
    assert promtool, PROMTOOL_MISSING
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120)


def test_the_alerting_rules_are_valid_prometheus_rules() -> None:
    out = _promtool("check", "rules", str(RULES_FILE))
    assert out.returncode == 0, out.stdout + out.stderr


def test_archive_drops_error_rate_stale_secret_and_site_drift_each_alert_as_the_rule_tests_expect() -> None:
    out = _promtool("test", "rules", str(RULE_TESTS))
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_rule_test_and_a_runbook_entry() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES_FILE.read_text())["groups"] for r in g["rules"]}
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == tested
    runbook = (Path(__file__).resolve().parents[3] / "docs" / "runbooks" / "monitoring.md").read_text()
    assert not [a for a in alerts if f"### {a}" not in runbook]


def test_the_cluster_prometheus_evaluates_the_rules_file(stack_plan: Plan) -> None:
    (release,) = [
        r
        for r in stack_plan.of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs.get("chart") == "prometheus"
    ]
    rules = release.inputs["values"]["serverFiles"]["alerting_rules.yml"]
    assert rules == yaml.safe_load(RULES_FILE.read_text()), where(release)
