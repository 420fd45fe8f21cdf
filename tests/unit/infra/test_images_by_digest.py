"""Cluster images by digest: what the Pulumi program deploys is pinned by digest, and the rule that says so bites."""

from __future__ import annotations

import re

import yaml

from infra import contracts
from infra.offline import Plan
from infra.policy import rules
from tests.fakes.infra import where

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def test_every_image_in_charts_yaml_has_a_digest_or_says_why_not():
    images = yaml.safe_load((contracts.INFRA_DIR / "charts.yaml").read_text())["images"]
    for name, entry in images.items():
        if "digest" in entry:
            assert DIGEST.match(entry["digest"]), f"infra/charts.yaml image {name}: not a sha256 digest"
            assert contracts.image(name).endswith(f":{entry['tag']}@{entry['digest']}")
        else:
            assert len(str(entry.get("digest_unavailable", ""))) > 40, f"{name}: no digest and no reason"
    # the exceptions stay exceptional: only MLflow's image, whose upstream digest could not be established
    assert set(contracts.images_without_digest()) == {"ghcr.io/mlflow/mlflow:v3.17.2-full"}


def test_every_image_the_program_deploys_is_pinned_by_digest(stack_plan: Plan):
    seen = 0
    for resource in stack_plan.resources:
        props = resource.inputs
        refs = rules._image_refs(props.get("values") or {}) + rules._image_refs(props.get("spec") or {})
        seen += len(refs)
        assert rules.images_by_digest(resource.type, props, stack_plan.stack) == [], where(resource)
    assert seen >= 2, "the program names no image at all: the walk misses them"


def test_the_object_store_charts_get_tag_at_digest_references():
    from infra.components.object_store import minio_values, seaweedfs_values
    from infra.config import ObjectStoreSettings

    settings = ObjectStoreSettings("minio", 4, "10Gi", "1", "1Gi")
    minio = minio_values(settings, "gp3", ("spira-features",))
    assert minio["image"]["tag"].endswith(contracts._image_entry("minio")["digest"])
    assert "@sha256:" in minio["mcImage"]["tag"]
    assert "@sha256:" in seaweedfs_values(settings, "gp3", ("spira-features",))["image"]["tag"]


def test_a_tag_only_image_fails_the_rule_in_a_workload_and_in_helm_values():
    pod = {"template": {"spec": {"containers": [{"name": "x", "image": "ghcr.io/x/y:1.0"}]}}}
    assert rules.images_by_digest("kubernetes:apps/v1:Deployment", {"spec": pod}, "staging")
    values = {"server": {"image": {"repository": "hashicorp/vault", "tag": "1.20.0"}}}
    assert rules.images_by_digest(rules.RELEASE, {"values": values}, "staging")
    digest = "sha256:" + "a" * 64
    pinned = {"server": {"image": {"repository": "hashicorp/vault", "tag": f"1.20.0@{digest}"}}}
    assert rules.images_by_digest(rules.RELEASE, {"values": pinned}, "staging") == []
    by_digest_only = {"template": {"spec": {"containers": [{"image": f"ghcr.io/x/y@{digest}"}]}}}
    assert rules.images_by_digest("kubernetes:batch/v1:Job", {"spec": by_digest_only}, "production") == []
    assert rules.check("kubernetes:apps/v1:Deployment", {"spec": pod}, "staging")[0][0] == "images-by-digest"


def test_both_clusters_install_kyverno_and_enforce_the_verify_images_policy_as_committed(stack_plan: Plan):
    from infra.components.admission import verify_images_policy

    release = stack_plan.one(rules.RELEASE, "kyverno")
    assert (
        release.inputs["namespace"] == "kyverno"
        and release.inputs["values"]["admissionController"]["replicas"] >= 2
    )
    (policy,) = [r for r in stack_plan.resources if r.type == "kubernetes:kyverno.io/v1:ClusterPolicy"]
    committed = verify_images_policy()
    assert policy.inputs["spec"] == committed["spec"], where(policy)
    assert policy.inputs["metadata"]["name"] == "spira-verify-images"
