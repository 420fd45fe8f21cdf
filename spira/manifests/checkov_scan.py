"""checkov over the rendered output.

checkov knows core workload kinds only: a Rollout or an AnalysisTemplate is not scanned as a workload. So
each Rollout is also handed to it as the Deployment it is equivalent to (same metadata, annotations and
pod template) and each gate Job metric as the Job Argo Rollouts creates; an inline skip
(`checkov.io/skip<N>: CKV_...=why` on the Rollout's or Job's metadata) carries over. Running checkov is a
port, so the checks around it are testable without the tool.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from spira.manifests.render import REPO_ROOT

Doc = dict[str, Any]
CHECKOV_VENV = REPO_ROOT / ".venv-checkov"


@dataclass(frozen=True)
class CheckovFailure:
    check_id: str
    name: str
    resource: str

    def __str__(self) -> str:
        return f"{self.check_id} {self.resource}: {self.name}"


def as_core_workloads(docs: list[Doc]) -> list[Doc]:
    """The rendered objects plus the core workloads the Argo objects stand for."""
    out = list(docs)
    for doc in docs:
        meta = doc.get("metadata", {})
        if doc.get("kind") == "Rollout":
            out.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {
                        k: v for k, v in meta.items() if k in ("name", "namespace", "labels", "annotations")
                    },
                    "spec": {
                        k: doc["spec"][k] for k in ("replicas", "selector", "template") if k in doc["spec"]
                    },
                }
            )
        elif doc.get("kind") == "AnalysisTemplate":
            for metric in doc["spec"].get("metrics", []):
                job = metric.get("provider", {}).get("job")
                if job:
                    out.append(
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "metadata": {
                                "name": f"{meta.get('name')}-{metric.get('name')}",
                                "namespace": meta.get("namespace"),
                                **job.get("metadata", {}),
                            },
                            "spec": job["spec"],
                        }
                    )
    return out


class Checkov(ABC):
    @abstractmethod
    def scan(self, docs: list[Doc]) -> list[CheckovFailure]:
        """Failed checks (skips excluded) over these objects."""


class CheckovCli(Checkov):
    """The checkov CLI from its own virtualenv (mk/manifests.mk pins and installs it)."""

    def __init__(self, executable: Path | None = None) -> None:
        self.executable = executable or Path(
            os.environ.get("SPIRA_CHECKOV", CHECKOV_VENV / "bin" / "checkov")
        )

    def scan(self, docs: list[Doc]) -> list[CheckovFailure]:
        if not self.executable.is_file():
            raise FileNotFoundError(f"checkov not found at {self.executable}: run `make manifests-deps`")
        with tempfile.TemporaryDirectory(prefix="spira-checkov-") as tmp:
            target = Path(tmp) / "rendered.yaml"
            target.write_text(yaml.safe_dump_all(docs, sort_keys=False))
            # Offline: no guideline download, no platform mapping, no update check.
            env = {
                **os.environ,
                "BC_SKIP_MAPPING": "TRUE",
                "CHECKOV_SKIP_DOWNLOAD": "TRUE",
                "LOG_LEVEL": "ERROR",
                "ANSI_COLORS_DISABLED": "1",
            }
            proc = subprocess.run(
                [
                    str(self.executable),
                    "-f",
                    str(target),
                    "--framework",
                    "kubernetes",
                    "-o",
                    "json",
                    "--quiet",
                    "--compact",
                    "--skip-download",
                ],
                capture_output=True,
                text=True,
                env=env,
                check=False,
                timeout=600,
            )
        return parse_report(proc.stdout, proc.returncode, proc.stderr)


def parse_report(stdout: str, returncode: int, stderr: str = "") -> list[CheckovFailure]:
    start = stdout.find("{")
    start = min(i for i in (start, stdout.find("[")) if i >= 0) if stdout.strip() else -1
    if start < 0:
        raise RuntimeError(f"checkov printed no report (exit {returncode}): {stderr.strip()[-2000:]}")
    report = json.loads(stdout[start:])
    reports = report if isinstance(report, list) else [report]
    failures = []
    for rep in reports:
        for failed in rep.get("results", {}).get("failed_checks", []):
            failures.append(
                CheckovFailure(failed["check_id"], failed.get("check_name", ""), failed.get("resource", ""))
            )
    return failures
