"""The declared facts reach the manifests through generated patches, and a stale patch is caught."""

from __future__ import annotations

import pytest

from infra.environments import declared
from infra.vault import layout
from spira.manifests import generate, render
from spira.manifests.semantic import of_kind


def test_the_committed_patches_are_what_the_declaration_generates():
    assert generate.stale() == [], "run `spira manifests golden` and commit the patches"


@pytest.mark.parametrize("env", list(render.ENVIRONMENTS))
def test_every_environments_post_promotion_analysis_queries_the_declared_prometheus(env):
    (rollout,) = [
        r for r in of_kind(render.render_docs(env), "Rollout") if r["metadata"]["name"] == "spira-model"
    ]
    args = rollout["spec"]["strategy"]["blueGreen"]["postPromotionAnalysis"]["args"]
    address = next(a["value"] for a in args if a["name"] == "prometheus-address")
    assert address == declared().service("prometheus").url


@pytest.mark.parametrize("env", declared().clusters)
def test_each_cluster_logs_in_to_the_declared_vault_with_its_layout_role(env):
    (rollout,) = [
        r for r in of_kind(render.render_docs(env), "Rollout") if r["metadata"]["name"] == "spira-model"
    ]
    values = {e["name"]: e["value"] for e in rollout["spec"]["template"]["spec"]["containers"][0]["env"]}
    values.pop("BENTOML_CONFIG_OPTIONS")  # TLS, the same everywhere (tests/unit/infra/test_in_cluster_tls.py)
    assert values == {
        "VAULT_ADDR": declared().service("vault").url,
        "VAULT_ROLE": layout.role_name(env, "serving"),
        "VAULT_SECRET_PATH": layout.secret_ref(env, "serving"),
    }


def test_a_changed_stack_size_makes_the_committed_overlay_stale(monkeypatch):
    monkeypatch.setattr(generate.contracts, "stack_sizes", lambda env: (7, 2))
    stale = {p.relative_to(render.REPO_ROOT).as_posix() for p in generate.stale()}
    assert stale == {f"argocd/overlays/{env}/model-rollout-patch.yaml" for env in declared().clusters}


def test_a_base_without_the_addressed_item_cannot_be_patched():
    rollout = {
        "spec": {"strategy": {"blueGreen": {"postPromotionAnalysis": {"args": [{"name": "namespace"}]}}}}
    }
    with pytest.raises(generate.GenerateError, match="no item named 'prometheus-address'"):
        generate.platform_patch(rollout)
