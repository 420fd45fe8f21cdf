"""Argo CD and Argo Rollouts (argo-helm, pinned), then the AppProject and the root Application that make
the cluster follow the stack's branch and overlay. Both objects come from the templates the GitOps
manifests keep in argocd/bootstrap/; only names, repository, branch and path are set here."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra import contracts
from infra.components.helm import pinned_release

ARGOCD_NAMESPACE = "argocd"
ROLLOUTS_NAMESPACE = "argo-rollouts"


NOTIFICATIONS = Path(__file__).resolve().parents[1] / "rollouts-notifications.yaml"


def rollouts_notifications(environment: str, repo_url: str, text: str | None = None) -> dict[str, Any]:
    """The argo-rollouts chart's `notifications` values (infra/rollouts-notifications.yaml) for one
    cluster: the dispatch goes to the GitOps repository's API and names the environment to revert."""
    repository = repo_url.removesuffix(".git").split("github.com/", 1)[-1].strip("/")
    if repository.count("/") != 1:
        raise ValueError(f"not a GitHub repository URL: {repo_url!r} (the revert workflow runs there)")
    raw = NOTIFICATIONS.read_text() if text is None else text
    filled = raw.replace("${REPOSITORY}", repository).replace("${ENVIRONMENT}", environment)
    return {"configmap": {"create": True}, **yaml.safe_load(filled)}


@dataclass(frozen=True)
class ArgoArgs:
    environment: str
    repo_url: str
    domain: str


def project_object(template: dict[str, Any], repo_url: str) -> dict[str, Any]:
    """The AppProject as the template writes it, allowed to read only this repository."""
    project = copy.deepcopy(template)
    project["metadata"].setdefault("namespace", ARGOCD_NAMESPACE)
    project["spec"]["sourceRepos"] = [repo_url]
    return project


def root_application_object(
    template: dict[str, Any], environment: str, target: contracts.GitTarget, repo_url: str, project: str
) -> dict[str, Any]:
    """The root Application of an environment: its name, repository, branch and overlay set, the rest
    (sync policy, destination) exactly as the template says."""
    app = copy.deepcopy(template)
    source = app["spec"].get("source")
    if not isinstance(source, dict):
        raise contracts.ContractError("argocd/bootstrap/root-application.yaml has no spec.source to set")
    app["metadata"]["name"] = f"spira-{environment}"
    app["metadata"].setdefault("namespace", ARGOCD_NAMESPACE)
    app["spec"]["project"] = project
    source["repoURL"] = repo_url
    source["targetRevision"] = target.branch
    source["path"] = target.overlay
    return app


class Argo(pulumi.ComponentResource):
    def __init__(self, name: str, args: ArgoArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:platform:Argo", name, None, opts)
        # Load the templates first: a missing template fails the program before anything is created.
        project_tpl = contracts.load_bootstrap_template(contracts.APPPROJECT_TEMPLATE)
        app_tpl = contracts.load_bootstrap_template(contracts.ROOT_APPLICATION_TEMPLATE)

        self.argocd = pinned_release(
            f"{name}-cd",
            "argo-cd",
            ARGOCD_NAMESPACE,
            {
                "global": {"domain": f"argocd.{args.domain}"},
                # Argo CD's own login only; no anonymous access, no exec into pods from the UI.
                "configs": {"cm": {"users.anonymous.enabled": "false", "exec.enabled": "false"}},
                "redis-ha": {"enabled": False},
            },
            pulumi.ResourceOptions(parent=self),
        )
        self.rollouts = pinned_release(
            f"{name}-rollouts",
            "argo-rollouts",
            ROLLOUTS_NAMESPACE,
            {
                "controller": {"replicas": 2},
                "dashboard": {"enabled": False},
                # an aborted rollout dispatches the revert workflow (docs/runbooks/revert.md)
                "notifications": rollouts_notifications(args.environment, args.repo_url),
            },
            pulumi.ResourceOptions(parent=self),
        )
        # The CRDs come with the charts: the custom resources wait for both releases.
        after_charts = pulumi.ResourceOptions(parent=self, depends_on=[self.argocd, self.rollouts])
        target = contracts.git_target(args.environment)
        project = project_object(project_tpl, args.repo_url)
        app = root_application_object(
            app_tpl, args.environment, target, args.repo_url, project["metadata"]["name"]
        )
        self.project = k8s.apiextensions.CustomResource(
            f"{name}-project",
            api_version=project["apiVersion"],
            kind=project["kind"],
            metadata=project["metadata"],
            spec=project["spec"],
            opts=after_charts,
        )
        self.root_app = k8s.apiextensions.CustomResource(
            f"{name}-root-app",
            api_version=app["apiVersion"],
            kind=app["kind"],
            metadata=app["metadata"],
            spec=app["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.project]),
        )
        self.register_outputs(
            {
                "rootApplication": app["metadata"]["name"],
                "targetRevision": target.branch,
                "path": target.overlay,
            }
        )
