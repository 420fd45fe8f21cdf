"""Both stacks build under mocks from their real config files, and a broken config fails loudly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from infra import contracts, offline
from infra.offline import Plan
from tests.fakes.infra import where

EXPECTED_OUTPUTS = {
    "clusterName", "oidcIssuer", "gpuMaxNodes", "registryUrls", "objectStoreEndpoint", "mlflowTrackingUri",
    "vaultCaCertPem", "kubeconfig", "prometheusAddress", "natsAddress",
}  # fmt: skip


def test_each_stack_builds_from_its_real_config_and_exports_what_operators_need(stack_plan: Plan) -> None:
    assert set(stack_plan.outputs) == EXPECTED_OUTPUTS
    assert stack_plan.outputs["oidcIssuer"].startswith("https://oidc.eks.")
    assert stack_plan.outputs["mlflowTrackingUri"] == "http://mlflow.spira.svc.cluster.local:5000"


def test_the_stack_config_comes_from_the_stack_files_with_project_defaults_underneath() -> None:
    staging = offline.stack_config("staging")
    production = offline.stack_config("production")
    assert staging["spira-platform:environment"] == "staging"
    assert production["spira-platform:environment"] == "production"
    # a default declared once in Pulumi.yaml reaches both stacks
    assert staging["spira-platform:gpusPerPod"] == production["spira-platform:gpusPerPod"] == "1"
    assert staging["aws:region"] == "eu-west-1"


def test_every_resource_is_created_inside_a_component(stack_plan: Plan) -> None:
    for r in stack_plan.resources:
        if r.custom and not r.type.startswith("pulumi:providers:"):
            assert r.parent_types[-1].startswith("spira:"), f"{where(r)} is not a child of a spira component"


def test_every_kubernetes_resource_targets_the_stacks_cluster(stack_plan: Plan) -> None:
    for r in stack_plan.resources:
        if r.custom and r.type.startswith("kubernetes:"):
            assert "pulumi:providers:kubernetes::spira-cluster-k8s" in r.provider, (
                f"{where(r)} would use the ambient kubeconfig instead of the stack's cluster"
            )


def test_resource_counts_are_the_same_in_both_stacks(staging: Plan, production: Plan) -> None:
    # Stacks differ in values, never in shape (the diff test says which values).
    assert sorted(r.type for r in staging.resources) == sorted(r.type for r in production.resources)


def _copy_config(tmp_path: Path) -> Path:
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.production.yaml"):
        shutil.copy(contracts.REPO_ROOT / name, tmp_path / name)
    return tmp_path


def test_a_stack_file_missing_a_required_key_fails_the_build(tmp_path: Path) -> None:
    root = _copy_config(tmp_path)
    stack_file = root / "Pulumi.staging.yaml"
    doc = yaml.safe_load(stack_file.read_text())
    del doc["config"]["spira-platform:modelReplicas"]
    stack_file.write_text(yaml.safe_dump(doc))
    with pytest.raises(Exception, match="modelReplicas"):
        offline.run("staging", root=root)


def test_a_stack_for_an_environment_the_declaration_does_not_name_is_refused() -> None:
    with pytest.raises(ValueError, match="environment: unknown environment 'qa'"):
        offline.run("staging", overrides={"environment": "qa"})
    with pytest.raises(ValueError, match="'local' is not a cluster environment"):
        offline.run("staging", overrides={"environment": "local"})


def test_an_unknown_object_store_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="objectStore must be one of minio, seaweedfs"):
        offline.run("staging", overrides={"objectStore": "ceph"})


def test_a_gpu_minimum_above_the_pools_maximum_is_refused() -> None:
    # staging: 1 model replica in each colour and 4 workers + 1 of surge on 1-GPU nodes: at most 7 nodes
    with pytest.raises(contracts.ContractError, match="gpuMinNodes=8 exceeds the GPU pool's maximum 7"):
        offline.run("staging", overrides={"gpuMinNodes": 8})


def test_a_missing_argo_template_fails_with_a_clear_error() -> None:
    with pytest.raises(contracts.ContractError, match=r"Argo CD bootstrap template .* is missing"):
        contracts.load_bootstrap_template(contracts.BOOTSTRAP_DIR / "no-such-template.yaml")
