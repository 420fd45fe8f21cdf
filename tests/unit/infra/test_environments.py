"""infra/environments.yaml is the one declaration of the environments, and every layer that has one
thing per environment has exactly the declared ones."""

from __future__ import annotations

import pytest
import yaml

from infra import contracts, environments, offline
from infra.environments import DeclarationError, declared, parse
from infra.vault import layout
from spira.manifests import render

ROOT = contracts.REPO_ROOT


def test_every_layer_reads_the_environments_from_the_declaration():
    table = declared()
    assert table.names == layout.ENVIRONMENTS
    assert table.clusters == offline.STACKS
    assert tuple(render.ENVIRONMENTS) == table.names
    assert table.clusters == render.CLUSTER_ENVIRONMENTS


def test_each_cluster_has_a_stack_an_overlay_and_a_branch_and_nothing_else_does():
    table = declared()
    stacks = {p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in ROOT.glob("Pulumi.*.yaml")}
    overlays = {p.parent.name for p in (ROOT / "argocd" / "overlays").glob("*/kustomization.yaml")}
    assert stacks == overlays == set(table.clusters)
    for env in table.clusters:
        assert (ROOT / str(table.cluster(env).overlay)).is_dir()
        assert contracts.git_target(env).branch == table.cluster(env).branch
    with pytest.raises(ValueError, match="'local' is not a cluster environment"):
        table.cluster("local")


def test_each_environment_has_its_gate_thresholds_and_no_other_thresholds_exist():
    files = {p.stem for p in (ROOT / "loadtests" / "thresholds").glob("*.yaml")}
    assert files == set(declared().names)


def test_bucket_names_are_per_environment_and_by_the_secret_key_that_names_them():
    assert declared().buckets("staging") == {
        "features_bucket": "spira-staging-features",
        "archive_bucket": "spira-staging-archive",
        "artifacts_bucket": "spira-staging-mlflow",
        "backups_bucket": "spira-staging-backups",
    }
    with pytest.raises(ValueError, match="unknown environment 'qa'"):
        declared().buckets("qa")


def test_in_cluster_addresses_come_from_the_services_table():
    assert declared().service("vault").url == "https://vault.vault.svc.cluster.local:8200"
    assert declared().service("prometheus").url == "http://prometheus-server.monitoring.svc.cluster.local:80"
    assert (
        declared().service("objectstore", "seaweedfs").url
        == "https://seaweedfs-s3.objectstore.svc.cluster.local:8333"
    )
    assert declared().service("objectstore", "minio").host == "objectstore.objectstore.svc.cluster.local"
    with pytest.raises(DeclarationError, match="no engine 'ceph'"):
        declared().service("objectstore", "ceph")
    with pytest.raises(DeclarationError, match="declares no service 'grafana'"):
        declared().service("grafana")


def test_a_declaration_missing_a_section_fails_naming_it():
    raw = yaml.safe_load(environments.DECLARATION.read_text())
    del raw["vault_ca"]
    with pytest.raises(DeclarationError, match="lacks 'vault_ca'"):
        parse(raw)
