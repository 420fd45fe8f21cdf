"""The repository files the manifests are checked against, read where they live (never copied here):
the GPU pool contract, the Vault layout, the Pulumi stack sizes, the allowlist and the environment table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from infra import contracts as infra_contracts
from infra.environments import declared
from infra.vault import layout
from spira.manifests import drift
from spira.manifests.render import ARGOCD_DIR, REPO_ROOT
from spira.manifests.semantic import GpuPool, VaultExpectation

PULUMI_PROJECT = "spira-platform"
VAULT_SERVICE = "serving"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def gpu_pool() -> GpuPool:
    """infra/gpu_pool.yaml as the checks compare it, parsed by the one parser the Pulumi program uses."""
    contract = infra_contracts.gpu_pool()
    return GpuPool(
        taint_key=contract.taint.key,
        taint_value=contract.taint.value,
        taint_effect=contract.taint.effect,
        label_key=contract.label_key,
        label_value=contract.label_value,
        resource=contract.resource,
    )


def vault(env: str) -> VaultExpectation:
    service = layout.SERVICES[VAULT_SERVICE]
    return VaultExpectation(
        namespace=layout.NAMESPACE,
        service_account=service.service_account,
        audience=layout.AUDIENCE,
        role=layout.role_name(env, VAULT_SERVICE),
        secret_path=layout.secret_ref(env, VAULT_SERVICE),  # the <kv-mount>/<path> form workloads parse
        ca_configmap=declared().vault_ca.configmap,
        ca_key=declared().vault_ca.key,
    )


def _pulumi_setting(key: str, env: str | None = None) -> Any:
    """A Pulumi config value: the stack file's, else the project default (Pulumi.yaml declares each once)."""
    if env is not None:
        stack = (_yaml(REPO_ROOT / f"Pulumi.{env}.yaml") or {}).get("config", {})
        if f"{PULUMI_PROJECT}:{key}" in stack:
            return stack[f"{PULUMI_PROJECT}:{key}"]
    declared = _yaml(REPO_ROOT / "Pulumi.yaml")["config"].get(key, {})
    if "default" not in declared:
        raise KeyError(f"Pulumi config {key!r} has no value for {env or 'the project'}")
    return declared["default"]


def kubernetes_version() -> str:
    """The clusters' Kubernetes version, as the Pulumi program creates them."""
    return str(_pulumi_setting("kubernetesVersion"))


def stack_sizes(env: str) -> tuple[int, int]:
    """(modelReplicas, gpusPerPod) of a cluster's Pulumi stack."""
    return int(_pulumi_setting("modelReplicas", env)), int(_pulumi_setting("gpusPerPod", env))


def allowlist(path: Path = ARGOCD_DIR / "allowlist.yaml") -> list[drift.Allowed]:
    return drift.parse_allowlist(_yaml(path))


def environments() -> dict[str, dict[str, str]]:
    """Branch and overlay of each cluster environment, as infra/environments.yaml declares them."""
    table = declared()
    return {
        name: {"branch": str(env.branch), "overlay": str(env.overlay)}
        for name, env in table.environments.items()
        if env.cluster
    }


def bootstrap_templates() -> tuple[dict[str, Any], dict[str, Any]]:
    bootstrap = ARGOCD_DIR / "bootstrap"
    return _yaml(bootstrap / "appproject.yaml"), _yaml(bootstrap / "root-application.yaml")


def repo_url() -> str:
    return str(_pulumi_setting("repoUrl"))


def base_kustomization() -> dict[str, Any]:
    return _yaml(ARGOCD_DIR / "base" / "kustomization.yaml")
