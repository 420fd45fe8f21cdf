"""The monitoring declarations (scrape.yaml, spira-rules.yaml), rendered for a cluster and for the local
stack. Pure: reads the two files of this folder, returns dicts; no Pulumi, no application code."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SCRAPE_FILE = HERE / "scrape.yaml"
RULES_FILE = HERE / "spira-rules.yaml"
# where a Kubernetes pod names its metrics endpoint (the model Rollout's pod template carries these)
POD_ANNOTATIONS = ("prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path")
# http or https (the model pods: TLS with a certificate from the platform CA, the job's cluster_ca_file)
SCHEME_ANNOTATION = "prometheus.io/scheme"
# the Kubernetes discovery labels each declared target label comes from
POD_META = {"namespace": "__meta_kubernetes_namespace", "pod": "__meta_kubernetes_pod_name"}


@functools.cache
def declaration() -> dict[str, Any]:
    return yaml.safe_load(SCRAPE_FILE.read_text())


def alerting_rules() -> dict[str, Any]:
    """The rule groups Prometheus evaluates (unit-tested with `promtool test rules`)."""
    return yaml.safe_load(RULES_FILE.read_text())


def global_settings() -> dict[str, str]:
    return dict(declaration()["global"])


def _common(job: dict[str, Any]) -> dict[str, Any]:
    """What a job is wherever it runs: its name and its metrics path (discovery aside)."""
    return {"job_name": job["job_name"], "metrics_path": job["metrics_path"]}


def _annotation_label(annotation: str) -> str:
    return "__meta_kubernetes_pod_annotation_" + "".join(c if c.isalnum() else "_" for c in annotation)


def cluster_scrape_configs() -> list[dict[str, Any]]:
    """The jobs for the cluster's Prometheus: pods found through the Kubernetes API, kept when annotated
    prometheus.io/scrape "true", scraped at their annotated port, path and scheme (https verified against
    the platform CA only, the job's `cluster_ca_file`), labelled `target_labels`."""
    scrape, port, path = (_annotation_label(a) for a in POD_ANNOTATIONS)
    jobs = []
    for job in declaration()["jobs"]:
        unknown = set(job["target_labels"]) - set(POD_META)
        if unknown:
            raise ValueError(f"{SCRAPE_FILE}: no Kubernetes source for target labels {sorted(unknown)}")
        relabel = [
            {"source_labels": [scrape], "action": "keep", "regex": "true"},
            {
                "source_labels": [path],
                "action": "replace",
                "target_label": "__metrics_path__",
                "regex": "(.+)",
            },
            {
                "source_labels": [_annotation_label(SCHEME_ANNOTATION)],
                "action": "replace",
                "target_label": "__scheme__",
                "regex": "(https?)",
            },
            {
                "source_labels": ["__address__", port],
                "action": "replace",
                "regex": r"([^:]+)(?::\d+)?;(\d+)",
                "replacement": "$1:$2",
                "target_label": "__address__",
            },
            *(
                {"source_labels": [POD_META[label]], "action": "replace", "target_label": label}
                for label in job["target_labels"]
            ),
        ]
        jobs.append(
            {
                **_common(job),
                "kubernetes_sd_configs": [{"role": "pod"}],
                "relabel_configs": relabel,
                "tls_config": {"ca_file": job["cluster_ca_file"], "insecure_skip_verify": False},
            }
        )
    return jobs


def local_scrape_configs(targets_dir: Path) -> list[dict[str, Any]]:
    """The same jobs for the local stack: targets from `targets_dir/<job_name>/*.json` (file discovery),
    each file naming a server's host:port and the `target_labels` a pod would get in a cluster."""
    return [
        {
            **_common(job),
            "file_sd_configs": [
                {"files": [str(targets_dir / job["job_name"] / "*.json")], "refresh_interval": "2s"}
            ],
        }
        for job in declaration()["jobs"]
    ]


def local_prometheus_config(
    targets_dir: Path, self_address: str, overrides: dict[str, str] | None = None
) -> dict[str, Any]:
    """The local stack's prometheus.yml: the declared intervals (a test may shorten them), the alert rules
    file as it stands in the repository, Prometheus's own job, and the declared jobs."""
    return {
        "global": {**global_settings(), **(overrides or {})},
        "rule_files": [str(RULES_FILE)],
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [self_address]}]},
            *local_scrape_configs(targets_dir),
        ],
    }


def chart_values() -> dict[str, Any]:
    """The part of the prometheus chart's values rendered from the declarations: the global intervals
    (server.global), the scrape jobs (serverFiles prometheus.yml; the chart's own default jobs are replaced,
    so every model pod is scraped once, by the declared job) and the alert rules."""
    return {
        "server": {"global": global_settings()},
        "serverFiles": {
            "alerting_rules.yml": alerting_rules(),
            "prometheus.yml": {
                "scrape_configs": [
                    {"job_name": "prometheus", "static_configs": [{"targets": ["localhost:9090"]}]},
                    *cluster_scrape_configs(),
                ]
            },
        },
    }
