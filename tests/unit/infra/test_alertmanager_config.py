"""The clusters' Alertmanager (infra/monitoring/alerting.py, installed by the Monitoring component): a
configuration Alertmanager itself accepts (`amtool check-config`), whose routing tree sends the drift alert,
and only it, to the training EventSource's `drift` endpoint, where the Sensor listens for it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.monitoring.alerting import DRIFT_RECEIVER, NO_RECEIVER, alertmanager_config
from infra.offline import Plan
from infra.workflows import training_workflow
from spira.workflow import events
from tests.fakes.infra import where

AMTOOL_MISSING = "amtool not found: `make sysdeps` installs it (Debian package prometheus-alertmanager)"


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("alertmanager") / "alertmanager.yml"
    path.write_text(yaml.safe_dump(alertmanager_config()))
    return path


def _amtool(*args: str) -> subprocess.CompletedProcess:
    amtool = shutil.which("amtool")
    assert amtool, AMTOOL_MISSING
    return subprocess.run([amtool, *args], capture_output=True, text=True, timeout=60)


def _receiver(config_file: Path, *labels: str) -> str:
    out = _amtool("config", "routes", "test", f"--config.file={config_file}", *labels)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip()


def test_alertmanager_accepts_the_generated_configuration(config_file: Path) -> None:
    out = _amtool("check-config", str(config_file))
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_the_drift_alert_and_only_it_reaches_the_training_webhook(config_file: Path) -> None:
    drift = training_workflow().drift_alert
    assert _receiver(config_file, f"alertname={drift}", "site=clinic-a", "namespace=spira") == DRIFT_RECEIVER
    for other in ("SpiraModelErrors", "SpiraSecretStale", f"{drift}Resolved"):
        assert _receiver(config_file, f"alertname={other}", "namespace=spira") == NO_RECEIVER


def test_the_webhook_posts_firing_notifications_to_the_event_sources_drift_endpoint() -> None:
    (receiver,) = [r for r in alertmanager_config()["receivers"] if r["name"] == DRIFT_RECEIVER]
    (hook,) = receiver["webhook_configs"]
    source = events.event_source("staging")["spec"]
    endpoint = source["webhook"]["drift"]
    assert hook["url"] == events.event_source_url("staging") + endpoint["endpoint"]
    assert hook["url"].endswith(f":{source['service']['ports'][0]['port']}/drift")
    assert hook["send_resolved"] is False  # the Sensor acts on `firing` only
    # grouped by the alert's name alone: commonLabels.alertname, which the Sensor filters on, is always set
    (route,) = alertmanager_config()["route"]["routes"]
    assert route["group_by"] == ["alertname"]
    (dependency,) = [d for d in events.sensor("staging")["spec"]["dependencies"] if d["name"] == "drift"]
    paths = {f["path"]: f["value"] for f in dependency["filters"]["data"]}
    assert paths == {
        "body.status": ["firing"],
        "body.commonLabels.alertname": [training_workflow().drift_alert],
    }


def test_the_cluster_installs_alertmanager_with_that_configuration(stack_plan: Plan) -> None:
    release = stack_plan.one("kubernetes:helm.sh/v3:Release", "prometheus")
    alertmanager = release.inputs["values"]["alertmanager"]
    assert alertmanager["enabled"] is True, where(release)
    assert alertmanager["config"] == alertmanager_config(), where(release)
    assert alertmanager["persistence"]["enabled"] is True, where(release)
