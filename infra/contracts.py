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


def blue_green_max_nodes(model_replicas: int, gpus_per_pod: int, gpus_per_node: int) -> int:
    """Nodes needed for both colours of the model at full replicas at once (a blue/green switch)."""
    if model_replicas < 1 or gpus_per_pod < 1 or gpus_per_node < 1:
        raise ValueError("replicas, GPUs per pod and GPUs per node must all be at least 1")
    if gpus_per_pod > gpus_per_node:
        raise ContractError(f"a pod asking {gpus_per_pod} GPUs never fits a node with {gpus_per_node}")
    pods_per_node = gpus_per_node // gpus_per_pod
    return math.ceil(2 * model_replicas / pods_per_node)


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
