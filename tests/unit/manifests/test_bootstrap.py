from __future__ import annotations

import copy

from spira.manifests import bootstrap, check, contracts
from tests.unit.manifests.helpers import docs


def app_for(env: str) -> dict:
    _, template = contracts.bootstrap_templates()
    entry = contracts.environments()[env]
    return bootstrap.root_application(template, env, entry["branch"], entry["overlay"], contracts.repo_url())


def project() -> dict:
    return contracts.bootstrap_templates()[0]


def test_the_bootstrap_templates_fit_both_clusters():
    rendered = {env: docs(env) for env in ("staging", "production")}
    assert check.bootstrap_findings(rendered, contracts.kubernetes_version()) == []


def test_production_follows_main_and_staging_follows_staging():
    assert app_for("production")["spec"]["source"]["targetRevision"] == "main"
    assert app_for("production")["spec"]["source"]["path"] == "argocd/overlays/production"
    assert app_for("staging")["spec"]["source"]["targetRevision"] == "staging"


def test_the_template_is_left_untouched_by_filling_it_in():
    _, template = contracts.bootstrap_templates()
    before = copy.deepcopy(template)
    bootstrap.root_application(template, "production", "main", "argocd/overlays/production", "https://x")
    assert template == before


def test_a_kind_the_project_does_not_permit_is_caught():
    proj = project()
    proj["spec"]["namespaceResourceWhitelist"] = [
        e for e in proj["spec"]["namespaceResourceWhitelist"] if e["kind"] != "NetworkPolicy"
    ]
    rendered = docs("staging")
    out = [f.message for f in bootstrap.check(proj, app_for("staging"), rendered, "staging")]
    policies = [d for d in rendered if d["kind"] == "NetworkPolicy"]
    assert len(policies) >= 2
    assert out == [
        "does not permit NetworkPolicy (networking.k8s.io) that the staging overlay renders"
    ] * len(policies)


def _messages(app: dict, env: str) -> list[str]:
    """What the bootstrap check says of `app` against the project and the environment's render."""
    return [f.message for f in bootstrap.check(project(), app, docs(env), env)]


def test_a_repository_outside_the_project_is_caught():
    app = app_for("staging")
    app["spec"]["source"]["repoURL"] = "https://github.com/someone-else/fork.git"
    assert any("not in the AppProject's sourceRepos" in m for m in _messages(app, "staging"))


def test_sync_without_self_heal_or_create_namespace_is_caught():
    app = app_for("staging")
    app["spec"]["syncPolicy"]["automated"]["selfHeal"] = False
    app["spec"]["syncPolicy"]["syncOptions"] = []
    messages = _messages(app, "staging")
    assert "automated sync must prune and selfHeal (git is the only way in)" in messages
    assert "syncOptions lack CreateNamespace=true" in messages


def test_a_destination_namespace_other_than_the_rendered_one_is_caught():
    app = app_for("production")
    app["spec"]["destination"]["namespace"] = "default"
    assert any("destination namespace 'default'" in m for m in _messages(app, "production"))
