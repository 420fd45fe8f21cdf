"""The Argo CD bootstrap templates (AppProject, root Application) against the environments they serve.

Pure: the templates, the environment table and the rendered objects come in as arguments.
"""

from __future__ import annotations

import copy
from typing import Any

from spira.manifests.semantic import Finding

Doc = dict[str, Any]
REQUIRED_SYNC_OPTIONS = ("CreateNamespace=true",)


def root_application(template: Doc, env: str, branch: str, overlay: str, repo_url: str) -> Doc:
    """The root Application as the Pulumi program makes it from the template: name, repo, branch, path."""
    app = copy.deepcopy(template)
    app["metadata"]["name"] = f"spira-{env}"
    app["spec"]["source"].update(repoURL=repo_url, targetRevision=branch, path=overlay)
    return app


def _group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def _permitted(entries: list[Doc], group: str, kind: str) -> bool:
    return any(e.get("group") in (group, "*") and e.get("kind") in (kind, "*") for e in entries or [])


def check(project: Doc, app: Doc, rendered: list[Doc], env: str) -> list[Finding]:
    out: list[Finding] = []
    where = f"Application/{app['metadata']['name']}"
    spec, pspec = app["spec"], project["spec"]
    if spec.get("project") != project["metadata"]["name"]:
        out.append(
            Finding(
                "argocd",
                where,
                f"project {spec.get('project')!r} is not the AppProject {project['metadata']['name']!r}",
            )
        )
    repo = spec["source"].get("repoURL")
    if repo not in pspec.get("sourceRepos", []) and "*" not in pspec.get("sourceRepos", []):
        out.append(Finding("argocd", where, f"repoURL {repo!r} is not in the AppProject's sourceRepos"))
    dest = spec.get("destination", {})
    namespaces = {d.get("metadata", {}).get("namespace") for d in rendered} - {None}
    if namespaces != {dest.get("namespace")}:
        out.append(
            Finding(
                "argocd",
                where,
                f"destination namespace {dest.get('namespace')!r} is not where the "
                f"overlay renders to ({sorted(namespaces)})",
            )
        )
    if not any(
        d.get("server") == dest.get("server") and d.get("namespace") in (dest.get("namespace"), "*")
        for d in pspec.get("destinations", [])
    ):
        out.append(Finding("argocd", where, "destination is not among the AppProject's destinations"))
    policy = spec.get("syncPolicy", {})
    auto = policy.get("automated") or {}
    if not (auto.get("prune") and auto.get("selfHeal")):
        out.append(
            Finding("argocd", where, "automated sync must prune and selfHeal (git is the only way in)")
        )
    for option in REQUIRED_SYNC_OPTIONS:
        if option not in policy.get("syncOptions", []):
            out.append(Finding("argocd", where, f"syncOptions lack {option}"))
    if not (policy.get("retry") or {}).get("limit"):
        out.append(Finding("argocd", where, "no sync retry"))
    if "CreateNamespace=true" in policy.get("syncOptions", []) and not _permitted(
        pspec.get("clusterResourceWhitelist", []), "", "Namespace"
    ):
        out.append(
            Finding(
                "argocd",
                f"AppProject/{project['metadata']['name']}",
                "CreateNamespace=true needs Namespace in clusterResourceWhitelist",
            )
        )
    for doc in rendered:
        group, kind = _group(doc.get("apiVersion", "")), doc.get("kind", "")
        if not _permitted(pspec.get("namespaceResourceWhitelist", []), group, kind):
            out.append(
                Finding(
                    "argocd",
                    f"AppProject/{project['metadata']['name']}",
                    f"does not permit {kind} ({group or 'core'}) that the {env} overlay renders",
                )
            )
    return out
