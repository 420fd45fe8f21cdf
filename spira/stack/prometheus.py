"""Prometheus in the local stack: Debian's `/usr/bin/prometheus` on 127.0.0.1, its configuration rendered from
the same declarations as the clusters' (infra/monitoring: the scrape job, the intervals, the alert rules),
its data under $SPIRA_HOME/prometheus.

A cluster finds the model pods through the Kubernetes API; here a server is added as a target file
(`add_target`: its host:port and the `namespace`/`pod` labels a pod would carry), which Prometheus picks up
within two seconds, without a restart.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import requests
import yaml

from infra.monitoring import declaration, local_prometheus_config
from spira.stack.config import StackConfig
from spira.stack.errors import StackError
from spira.stack.net import http_status
from spira.stack.process import ManagedProcess
from spira.stack.service import LocalService

NAME = "prometheus"
BINARY = "prometheus"
RETENTION = "7d"


def prometheus_binary() -> str:
    found = shutil.which(BINARY) or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if not found:
        raise StackError(NAME, "prometheus is not installed", "apt-get install prometheus (make sysdeps)")
    return found


class PrometheusService(LocalService):
    name, folder = NAME, "prometheus"

    def __init__(self, cfg: StackConfig, overrides: dict[str, str] | None = None) -> None:
        """`overrides`: global settings replacing the declared ones (a test's 1 s scrape interval)."""
        super().__init__(cfg)
        self.address = f"127.0.0.1:{cfg.prometheus_port}"
        self.url = f"http://{self.address}"
        self.config_file = self.dir / "prometheus.yml"
        self.targets_dir = self.dir / "targets"
        self.overrides = overrides

    def ports(self) -> list[int]:
        return [self.cfg.prometheus_port]

    def write_config(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        for job in declaration()["jobs"]:
            (self.targets_dir / job["job_name"]).mkdir(parents=True, exist_ok=True)
        config = local_prometheus_config(self.targets_dir, self.address, self.overrides)
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))

    def process(self) -> ManagedProcess:
        argv = [
            prometheus_binary(),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--storage.tsdb.retention.time={RETENTION}",
            f"--web.listen-address={self.address}",
            "--log.level=warn",
        ]
        return ManagedProcess(NAME, argv, self.cfg.home / "run", grace_s=10)

    def answering(self) -> bool:
        return http_status(f"{self.url}/-/ready") is not None

    def healthy(self) -> bool:
        return http_status(f"{self.url}/-/ready") == 200

    # -- targets -------------------------------------------------------------------------------------
    def add_target(self, name: str, address: str, labels: dict[str, str], job: str = "spira-pods") -> Path:
        """Scrape `address` (host:port) under `labels` (the declared target labels: namespace, pod)."""
        declared = {j["job_name"]: j for j in declaration()["jobs"]}
        if job not in declared:
            raise ValueError(f"no scrape job {job!r} is declared (infra/monitoring/scrape.yaml)")
        missing = set(declared[job]["target_labels"]) - set(labels)
        if missing:
            raise ValueError(f"target {name}: the job {job} labels every target with {sorted(missing)} too")
        path = self.targets_dir / job / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")  # not matched by *.json: Prometheus never reads half a file
        tmp.write_text(json.dumps([{"targets": [address], "labels": labels}]))
        os.replace(tmp, path)
        return path

    def remove_target(self, name: str, job: str = "spira-pods") -> None:
        (self.targets_dir / job / f"{name}.json").unlink(missing_ok=True)


def query(url: str, promql: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """An instant query against Prometheus's HTTP API: the result vector ([{metric, value: [t, "v"]}])."""
    resp = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=timeout_s)
    body = resp.json()
    if resp.status_code != 200 or body.get("status") != "success":
        raise RuntimeError(f"Prometheus refused {promql!r}: {body.get('error', resp.text[:200])}")
    return body["data"]["result"]
