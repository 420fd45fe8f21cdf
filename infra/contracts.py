"""Files the program applies rather than restates: the GPU pool contract, the chart pins, the Argo CD
bootstrap templates; plus the blue/green sizing rule for the GPU pool.

Pure functions over files in the repository: nothing here talks to a cloud or to Pulumi.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from infra.environments import declared

INFRA_DIR = Path(__file__).resolve().parent
REPO_ROOT = INFRA_DIR.parent
BOOTSTRAP_DIR = REPO_ROOT / "argocd" / "bootstrap"
APPPROJECT_TEMPLATE = BOOTSTRAP_DIR / "appproject.yaml"
ROOT_APPLICATION_TEMPLATE = BOOTSTRAP_DIR / "root-application.yaml"

# GPUs per instance for the GPU instance families the pool may use (AWS instance specifications).
# The table is a fact about the hardware, not a setting: the pool's size is derived from it.
GPUS_PER_INSTANCE: dict[str, int] = {
    "g4dn.xlarge": 1, "g4dn.2xlarge": 1, "g4dn.4xlarge": 1, "g4dn.8xlarge": 1, "g4dn.16xlarge": 1,
    "g4dn.12xlarge": 4, "g4dn.metal": 8,
    "g5.xlarge": 1, "g5.2xlarge": 1, "g5.4xlarge": 1, "g5.8xlarge": 1, "g5.16xlarge": 1,
    "g5.12xlarge": 4, "g5.24xlarge": 4, "g5.48xlarge": 8,
    "g6.xlarge": 1, "g6.2xlarge": 1, "g6.4xlarge": 1, "g6.8xlarge": 1, "g6.16xlarge": 1,
    "g6.12xlarge": 4, "g6.24xlarge": 4, "g6.48xlarge": 8,
    "p4d.24xlarge": 8, "p5.48xlarge": 8,
}  # fmt: skip

# Kubernetes taint effects as the EKS node-group API spells them.
EKS_TAINT_EFFECTS = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}


class ContractError(ValueError):
    """A repository contract (GPU pool, charts, bootstrap templates) is missing or malformed."""


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str


@dataclass(frozen=True)
class GpuPoolContract:
    taint: Taint
    label_key: str
    label_value: str
    resource: str

    @property
    def eks_taint(self) -> dict[str, str]:
        return {
            "key": self.taint.key,
            "value": self.taint.value,
            "effect": EKS_TAINT_EFFECTS[self.taint.effect],
        }

    @property
    def toleration(self) -> dict[str, str]:
        return {
            "key": self.taint.key,
            "operator": "Equal",
            "value": self.taint.value,
            "effect": self.taint.effect,
        }

    @property
    def node_selector(self) -> dict[str, str]:
        return {self.label_key: self.label_value}


@dataclass(frozen=True)
class Chart:
    name: str
    repo: str
    chart: str
    version: str


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ContractError(f"{path} is missing") from exc


@cache
def gpu_pool() -> GpuPoolContract:
    """The GPU pool contract of infra/gpu_pool.yaml (shared with the manifests' checks)."""
    raw = _read_yaml(INFRA_DIR / "gpu_pool.yaml")
    try:
        taint = Taint(str(raw["taint"]["key"]), str(raw["taint"]["value"]), str(raw["taint"]["effect"]))
        contract = GpuPoolContract(
            taint, str(raw["label"]["key"]), str(raw["label"]["value"]), str(raw["resource"])
        )
    except (KeyError, TypeError) as exc:
        raise ContractError(f"infra/gpu_pool.yaml lacks {exc}") from exc
    if taint.effect not in EKS_TAINT_EFFECTS:
        raise ContractError(f"infra/gpu_pool.yaml: unknown taint effect {taint.effect!r}")
    return contract


@cache
def _charts_file() -> dict[str, Any]:
    return _read_yaml(INFRA_DIR / "charts.yaml")


def chart(name: str) -> Chart:
    entry = _charts_file()["charts"].get(name)
    if entry is None:
        raise ContractError(f"infra/charts.yaml has no chart {name!r}")
    return Chart(name, entry["repo"], entry["chart"], str(entry["version"]))


def _image_entry(name: str) -> dict[str, Any]:
    entry = _charts_file()["images"].get(name)
    if entry is None:
        raise ContractError(f"infra/charts.yaml has no image {name!r}")
    if not entry.get("digest") and not entry.get("digest_unavailable"):
        raise ContractError(
            f"infra/charts.yaml image {name!r} has no digest (nor a digest_unavailable reason)"
        )
    return entry


def _tag_ref(entry: dict[str, Any]) -> str:
    """`tag@sha256:...`: charts that render `repository:tag` then pull by digest (the tag is for the reader)."""
    return f"{entry['tag']}@{entry['digest']}" if entry.get("digest") else str(entry["tag"])


def image(name: str) -> str:
    """`repository:tag@sha256:...` of a pinned image (infra/charts.yaml)."""
    entry = _image_entry(name)
    return f"{entry['repository']}:{_tag_ref(entry)}"


def image_parts(name: str) -> tuple[str, str]:
    """(repository, `tag@sha256:...`) for charts that take the two separately."""
    entry = _image_entry(name)
    return entry["repository"], _tag_ref(entry)


def images_without_digest() -> dict[str, str]:
    """`repository:tag` -> why no digest, for the images declared without one (images-by-digest allows only these)."""
    return {
        f"{e['repository']}:{e['tag']}": str(e["digest_unavailable"])
        for e in _charts_file()["images"].values()
        if not e.get("digest")
    }


def gpus_per_node(instance_types: tuple[str, ...]) -> int:
    """GPUs per node of a pool; every type must be a known GPU type with the same count, or the
    autoscaler's arithmetic (and ours) would be wrong for some nodes."""
    unknown = [t for t in instance_types if t not in GPUS_PER_INSTANCE]
    if unknown or not instance_types:
        raise ContractError(f"not known GPU instance types: {unknown or 'none given'}")
    counts = {GPUS_PER_INSTANCE[t] for t in instance_types}
    if len(counts) != 1:
        raise ContractError(
            f"GPU instance types {list(instance_types)} carry different GPU counts {sorted(counts)}"
        )
    return counts.pop()


def blue_green_max_nodes(
    model_replicas: int, gpus_per_pod: int, gpus_per_node: int, worker_pods: int = 0
) -> int:
    """Nodes needed for both colours of the model at full replicas at once (a blue/green switch) beside
    the queue workers at their most (`worker_pods`, worker_max_pods): each pod asks `gpus_per_pod` GPUs."""
    if model_replicas < 1 or gpus_per_pod < 1 or gpus_per_node < 1 or worker_pods < 0:
        raise ValueError("replicas, GPUs per pod and GPUs per node at least 1, worker pods at least 0")
    if gpus_per_pod > gpus_per_node:
        raise ContractError(f"a pod asking {gpus_per_pod} GPUs never fits a node with {gpus_per_node}")
    pods_per_node = gpus_per_node // gpus_per_pod
    return math.ceil((2 * model_replicas + worker_pods) / pods_per_node)


WORKER_SCALEDOBJECT = Path("argocd/base/worker-scaledobject.yaml")
WORKER_ROLLOUT = Path("argocd/base/worker-rollout.yaml")
WORKER_NAME = "spira-worker"


def _pointer_set(doc: Any, path: str, value: Any) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.strip("/").split("/")]
    for part in parts[:-1]:
        doc = doc[int(part)] if isinstance(doc, list) else doc.setdefault(part, {})
    if isinstance(doc, list):
        doc[int(parts[-1])] = value
    else:
        doc[parts[-1]] = value


def _merge(into: dict, patch: dict) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _as_deployed(base: Path, kind: str, overlay: Path) -> dict[str, Any]:
    """The manifest `base` with the overlay's patches that target it (JSON 6902 add/replace, or strategic
    merge of plain fields): the values the environment's cluster gets for the fields read here."""
    doc = yaml.safe_load((REPO_ROOT / base).read_text())
    kustomization = yaml.safe_load((REPO_ROOT / overlay / "kustomization.yaml").read_text()) or {}
    for patch in kustomization.get("patches") or []:
        target = patch.get("target") or {}
        if target.get("kind") != kind or target.get("name") != WORKER_NAME or "path" not in patch:
            continue
        body = yaml.safe_load((REPO_ROOT / overlay / patch["path"]).read_text())
        if isinstance(body, list):
            for op in body:
                if op.get("op") in ("add", "replace"):
                    _pointer_set(doc, op["path"], op["value"])
        elif isinstance(body, dict):
            _merge(doc, body)
    return doc


def worker_max_pods(environment: str) -> int:
    """The most queue-worker pods the environment's manifests run at once: the KEDA ScaledObject's
    maxReplicaCount, plus the worker Rollout's canary maxSurge (a new version's pods beside the old ones
    during its update), as the environment's overlay leaves them. Each worker pod asks the model's GPUs."""
    overlay = Path(git_target(environment).overlay)
    scaled = _as_deployed(WORKER_SCALEDOBJECT, "ScaledObject", overlay)
    rollout = _as_deployed(WORKER_ROLLOUT, "Rollout", overlay)
    maximum = scaled["spec"].get("maxReplicaCount", 100)  # KEDA's default
    surge = ((rollout["spec"].get("strategy") or {}).get("canary") or {}).get("maxSurge", "25%")
    if isinstance(surge, str):
        surge = math.ceil(maximum * int(surge.rstrip("%")) / 100) if surge.endswith("%") else int(surge)
    return int(maximum) + int(surge)


def load_bootstrap_template(path: Path) -> dict[str, Any]:
    """An Argo CD bootstrap template kept by the manifests (argocd/bootstrap/)."""
    if not path.is_file():
        raise ContractError(
            f"Argo CD bootstrap template {path.relative_to(REPO_ROOT)} is missing: the GitOps manifests keep "
            "the AppProject and root Application templates there, and the program creates them from it"
        )
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or "kind" not in doc or "spec" not in doc:
        raise ContractError(f"{path.relative_to(REPO_ROOT)} is not a single Kubernetes object")
    return doc


@dataclass(frozen=True)
class GitTarget:
    branch: str
    overlay: str


def git_target(environment: str) -> GitTarget:
    """The branch and overlay path the environment's root Application tracks (infra/environments.yaml)."""
    env = declared().cluster(environment)
    return GitTarget(branch=str(env.branch), overlay=str(env.overlay))
