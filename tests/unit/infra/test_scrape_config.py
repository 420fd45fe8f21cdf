"""The scrape configuration is declared once (infra/monitoring/scrape.yaml): the cluster's Prometheus (chart
values) and the local stack's (prometheus.yml) are rendered from it, differ only in how targets are found,
and the local one passes `promtool check config`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from infra.monitoring import (
    POD_ANNOTATIONS,
    SCHEME_ANNOTATION,
    cluster_scrape_configs,
    declaration,
    local_prometheus_config,
    local_scrape_configs,
)
from infra.offline import Plan
from tests.fakes.infra import where

REPO = Path(__file__).resolve().parents[3]
# how targets are found, and the cluster's TLS trust (its targets serve https; local ones plain http)
DISCOVERY = {"kubernetes_sd_configs", "relabel_configs", "file_sd_configs", "tls_config"}


def _promtool_check_config(config: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: `make sysdeps` installs it (Debian package prometheus)"
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )


def test_cluster_and_local_jobs_are_the_same_jobs_apart_from_target_discovery(tmp_path: Path) -> None:
    cluster, local = cluster_scrape_configs(), local_scrape_configs(tmp_path)
    strip = [{k: v for k, v in job.items() if k not in DISCOVERY} for job in cluster]
    assert strip == [{k: v for k, v in job.items() if k not in DISCOVERY} for job in local]
    assert [j["job_name"] for j in cluster] == [j["job_name"] for j in declaration()["jobs"]]


def test_the_cluster_job_labels_each_series_with_the_declared_target_labels_from_the_pod() -> None:
    for job, declared in zip(cluster_scrape_configs(), declaration()["jobs"], strict=True):
        targets = [r.get("target_label", "") for r in job["relabel_configs"]]
        labelled = [t for t in targets if t and not t.startswith("__")]
        assert labelled == declared["target_labels"]


def test_the_model_pods_carry_the_annotations_the_cluster_job_keeps_and_the_declared_path() -> None:
    rollout = yaml.safe_load((REPO / "argocd" / "base" / "model-rollout.yaml").read_text())
    annotations = rollout["spec"]["template"]["metadata"]["annotations"]
    scrape, port, path = POD_ANNOTATIONS
    assert annotations[scrape] == "true" and annotations[port].isdigit()
    assert annotations[path] == declaration()["jobs"][0]["metrics_path"]


def test_the_cluster_job_scrapes_the_model_pods_over_https_trusting_only_the_platform_ca() -> None:
    rollout = yaml.safe_load((REPO / "argocd" / "base" / "model-rollout.yaml").read_text())
    template = rollout["spec"]["template"]
    assert template["metadata"]["annotations"][SCHEME_ANNOTATION] == "https"
    probe = template["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    assert probe["scheme"] == "HTTPS"
    for job, declared in zip(cluster_scrape_configs(), declaration()["jobs"], strict=True):
        scheme = [r for r in job["relabel_configs"] if r.get("target_label") == "__scheme__"]
        assert scheme and scheme[0]["source_labels"] == [
            "__meta_kubernetes_pod_annotation_prometheus_io_scheme"
        ]
        assert job["tls_config"] == {"ca_file": declared["cluster_ca_file"], "insecure_skip_verify": False}


def test_the_local_config_passes_promtool(tmp_path: Path) -> None:
    # The cluster's rendering is not checked by this promtool: Debian's Prometheus is built without the
    # Kubernetes discovery (`field kubernetes_sd_configs not found`); the chart's image has it.
    local = local_prometheus_config(
        tmp_path / "targets", "127.0.0.1:9090", {"scrape_interval": "1s", "scrape_timeout": "1s"}
    )
    out = _promtool_check_config(local, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_local_prometheus_evaluates_the_same_rules_at_the_declared_intervals(tmp_path: Path) -> None:
    local = local_prometheus_config(tmp_path, "127.0.0.1:9090")
    assert local["global"] == declaration()["global"]
    assert local["rule_files"] == [str(REPO / "infra" / "monitoring" / "spira-rules.yaml")]


def test_the_cluster_prometheus_gets_the_declared_intervals_and_jobs(stack_plan: Plan) -> None:
    (release,) = [
        r
        for r in stack_plan.of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs.get("chart") == "prometheus"
    ]
    values = release.inputs["values"]
    assert values["server"]["global"] == declaration()["global"], where(release)
    jobs = values["serverFiles"]["prometheus.yml"]["scrape_configs"]
    assert jobs[1:] == cluster_scrape_configs(), where(release)
