"""Continuous training's engine: Argo Workflows and Argo Events (argo-helm, pinned in infra/charts.yaml), and
the least-privilege identities the rendered objects (spira/workflow/, `spira workflow render`) run as.

- The workflow controller runs in `argo` and manages only the workload namespace (a managed-namespace
  install: `--namespaced --managed-namespace spira`): the chart's Role covers its own namespace (its
  ConfigMap, its leader lease), CONTROLLER_RULES in the workload namespace are ours, and nothing is
  cluster-wide but the CRDs. No Argo server (UI/API) is exposed: runs are submitted by the CronWorkflow and
  the Sensor, and read with kubectl.
- Its artifact repository is the object store: the features bucket of the environment at the declared
  S3 Service, read by Argo's executor to fetch the labelled data (infra/environments.yaml training_workflow.data_prefix) with the
  key of the store's static user spira-<env>-argo-artifacts (get and list under data_prefix only:
  infra.workflows.artifact_grants), in the Secret ARTIFACTS_SECRET with the platform CA when S3 is https.
  The step containers themselves get only VAULT_* and read their S3 and MLflow credentials from Vault.
- The step pods run as the training service account (its Vault role binds `spira-training`); in
  Kubernetes it may only report its step's results (workflowtaskresults create/patch), nothing else.
- The Sensor's service account may create Workflows and read the WorkflowTemplate, nothing else.
- The candidate step's GitHub credential (repoUrl's owner/name and the stack's secret config
  candidateDispatchToken) goes to Vault's `candidate-dispatch`, from which `spira secrets seed` copies it into
  the training secret (spira/secrets/dispatch.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_vault as vault

from infra.components.helm import pinned_release
from infra.components.object_store import StaticKey
from infra.components.vault import VaultSecrets
from infra.environments import declared
from infra.vault import layout
from infra.workflows import training_workflow

WORKFLOWS_NAMESPACE = "argo"
WORKFLOWS_RELEASE = "argo-workflows"
EVENTS_NAMESPACE = "argo-events"
EVENTS_RELEASE = "argo-events"
# The Sensor's identity (spira/workflow/events.py SENSOR_SERVICE_ACCOUNT names the same account).
SENSOR_SERVICE_ACCOUNT = "spira-training-sensor"
# The Secret (workload namespace) holding the artifact repository's S3 key: `accesskey`, `secretkey`, and
# the platform CA (`ca.crt`) when the object store speaks TLS.
ARTIFACTS_SECRET = "argo-artifacts"

# The controller's own service account (in WORKFLOWS_NAMESPACE), named rather than derived from the chart.
CONTROLLER_SERVICE_ACCOUNT = "argo-workflows-controller"

# What each identity may do, and nothing more.
# The controller in the workload namespace: the chart's controller rules (argo-helm argo-workflows 1.0.18,
# workflow-controller-cluster-roles.yaml) for what it manages there, without the ones our workflows never
# use (PVCs of volumeClaimTemplates, PodDisruptionBudgets, the HTTP-template agent's Secret) and the ones
# that live in its own namespace (its ConfigMap, leases: the chart's Role there).
CONTROLLER_RULES = [
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "get", "list", "watch", "update", "patch", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "watch", "list"]},
    {
        "apiGroups": ["argoproj.io"],
        "resources": [
            "workflows",
            "workflows/finalizers",
            "workflowtasksets",
            "workflowtasksets/finalizers",
            "workflowtasksets/status",
            "workflowartifactgctasks",
        ],
        "verbs": ["get", "list", "watch", "update", "patch", "delete", "create"],
    },
    {
        "apiGroups": ["argoproj.io"],
        "resources": ["workflowtemplates", "workflowtemplates/finalizers"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["argoproj.io"],
        "resources": ["workflowtaskresults", "workflowtaskresults/finalizers"],
        "verbs": ["list", "watch", "deletecollection"],
    },
    {
        "apiGroups": ["argoproj.io"],
        "resources": ["cronworkflows", "cronworkflows/finalizers"],
        "verbs": ["get", "list", "watch", "update", "patch", "delete"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "list"]},
]
# The step pods' executor (Argo's minimal workflow Role, docs "Workflow RBAC"): it reports each step's
# outputs as a WorkflowTaskResult; artifact credentials reach it as a mounted Secret volume, not the API.
STEP_RULES = [
    {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
]
SENSOR_RULES = [
    {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create"]},
    {"apiGroups": ["argoproj.io"], "resources": ["workflowtemplates"], "verbs": ["get"]},
]


@dataclass(frozen=True)
class WorkflowsArgs:
    environment: str
    object_store_engine: str
    # the object store's static user for the artifact repository (ObjectStore.static_keys)
    artifact_key: StaticKey | None = None
    # the platform CA the object store's certificate chains to (trusted for https S3)
    platform_ca_pem: pulumi.Input[str] | None = None
    # the candidate step's dispatch: the repository Argo CD syncs from, the token (secret config), and
    # Vault (None before the first configuration: the credential is written at the next `pulumi up`)
    repo_url: str | None = None
    dispatch_token: pulumi.Input[str] | None = None
    secrets: VaultSecrets | None = None


GITHUB_REPO = re.compile(r"^(?:https://github\.com/|git@github\.com:)([\w.-]+/[\w.-]+?)(?:\.git)?/?$")


def github_repository(repo_url: str) -> str:
    """`owner/name` of a GitHub repository URL (what the repository_dispatch API names)."""
    found = GITHUB_REPO.match(repo_url)
    if not found:
        raise ValueError(
            f"repoUrl {repo_url!r} is not a GitHub repository: the candidate step dispatches there"
        )
    return found.group(1)


def artifact_repository(environment: str, engine: str) -> dict:
    store = declared().service("objectstore", engine)
    s3 = {
        "bucket": declared().buckets(environment)["features_bucket"],
        "endpoint": f"{store.host}:{store.port}",
        "insecure": store.scheme == "http",
        "accessKeySecret": {"name": ARTIFACTS_SECRET, "key": "accesskey"},
        "secretKeySecret": {"name": ARTIFACTS_SECRET, "key": "secretkey"},
    }
    if store.scheme == "https":
        # S3 over TLS from the platform's private CA: the executor trusts that CA only (same Secret)
        s3["caSecret"] = {"name": ARTIFACTS_SECRET, "key": declared().vault_ca.key}
    return {"archiveLogs": False, "s3": s3}


def artifacts_secret_data(
    key: StaticKey, engine: str, platform_ca_pem: pulumi.Input[str] | None
) -> dict[str, pulumi.Input[str]]:
    """The artifact repository's Secret: the static user's key, and the platform CA when S3 is https."""
    data: dict[str, pulumi.Input[str]] = {"accesskey": key.access_key, "secretkey": key.secret_key}
    if declared().service("objectstore", engine).scheme == "https":
        if platform_ca_pem is None:
            raise ValueError("the object store serves https: the artifact repository needs the platform CA")
        data[declared().vault_ca.key] = platform_ca_pem
    return data


def workflows_values(environment: str, engine: str) -> dict:
    namespace = declared().workload_namespace
    return {
        "crds": {"install": True, "keep": True},
        # Roles, not ClusterRoles: `--namespaced`, and the namespace it manages is the workload namespace
        "singleNamespace": True,
        "createAggregateRoles": False,
        "controller": {
            "extraArgs": ["--managed-namespace", namespace],
            "serviceAccount": {"create": True, "name": CONTROLLER_SERVICE_ACCOUNT},
            "clusterWorkflowTemplates": {"enabled": False},
        },
        # the identities of the step pods are ours (below), with only what the executor needs
        "workflow": {"serviceAccount": {"create": False}, "rbac": {"create": False}},
        "server": {"enabled": False},
        "useStaticCredentials": True,
        "artifactRepository": artifact_repository(environment, engine),
    }


def events_values() -> dict:
    # the controller manages EventBus, EventSource and Sensor objects in the workload namespace only
    return {
        "crds": {"install": True, "keep": True},
        "controller": {"rbac": {"namespaced": True, "managedNamespace": declared().workload_namespace}},
    }


class Workflows(pulumi.ComponentResource):
    def __init__(self, name: str, args: WorkflowsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:platform:Workflows", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace = declared().workload_namespace
        wf = training_workflow()
        self.controller = pinned_release(
            WORKFLOWS_RELEASE,
            "argo-workflows",
            WORKFLOWS_NAMESPACE,
            workflows_values(args.environment, args.object_store_engine),
            child,
        )
        self.events = pinned_release(EVENTS_RELEASE, "argo-events", EVENTS_NAMESPACE, events_values(), child)
        labels = {"app.kubernetes.io/name": "spira-training", "app.kubernetes.io/part-of": "spira"}
        # The controller's rights in the workload namespace (the chart's Role covers only its own).
        meta = {"name": CONTROLLER_SERVICE_ACCOUNT, "namespace": namespace, "labels": labels}
        k8s.rbac.v1.Role(f"{name}-controller-role", metadata=meta, rules=CONTROLLER_RULES, opts=child)
        k8s.rbac.v1.RoleBinding(
            f"{name}-controller-binding",
            metadata=meta,
            role_ref={
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": CONTROLLER_SERVICE_ACCOUNT,
            },
            subjects=[
                {
                    "kind": "ServiceAccount",
                    "name": CONTROLLER_SERVICE_ACCOUNT,
                    "namespace": WORKFLOWS_NAMESPACE,
                }
            ],
            opts=child,
        )
        if args.artifact_key is not None:
            k8s.core.v1.Secret(
                f"{name}-{ARTIFACTS_SECRET}",
                metadata={"name": ARTIFACTS_SECRET, "namespace": namespace, "labels": labels},
                string_data=artifacts_secret_data(
                    args.artifact_key, args.object_store_engine, args.platform_ca_pem
                ),
                opts=child,
            )
        for account, rules in ((wf.service_account, STEP_RULES), (SENSOR_SERVICE_ACCOUNT, SENSOR_RULES)):
            meta = {"name": account, "namespace": namespace, "labels": labels}
            k8s.core.v1.ServiceAccount(f"{name}-{account}-sa", metadata=meta, opts=child)
            k8s.rbac.v1.Role(f"{name}-{account}-role", metadata=meta, rules=rules, opts=child)
            k8s.rbac.v1.RoleBinding(
                f"{name}-{account}-binding",
                metadata=meta,
                role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
                subjects=[{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
                opts=child,
            )
        if args.secrets is not None and args.repo_url is not None and args.dispatch_token is not None:
            vault.kv.SecretV2(
                f"{name}-vault-candidate-dispatch",
                mount=args.secrets.mount.mount,
                name=layout.secret_path(args.environment, "candidate-dispatch"),
                data_json=pulumi.Output.secret(
                    pulumi.Output.json_dumps(
                        {
                            "github_repository": github_repository(args.repo_url),
                            "github_dispatch_token": args.dispatch_token,
                        }
                    )
                ),
                opts=pulumi.ResourceOptions(parent=self, provider=args.secrets.provider),
            )
        self.register_outputs(
            {"workflowsNamespace": WORKFLOWS_NAMESPACE, "eventsNamespace": EVENTS_NAMESPACE}
        )
