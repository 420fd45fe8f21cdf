"""Continuous training's engine: Argo Workflows and Argo Events (argo-helm, pinned in infra/charts.yaml), and
the least-privilege identities the rendered objects (spira/workflow/, `spira workflow render`) run as.

- The workflow controller watches only the workload namespace; no Argo server (UI/API) is exposed: runs
  are submitted by the CronWorkflow and the Sensor, and read with kubectl.
- Its artifact repository is the object store: the features bucket of the environment at the declared
  S3 Service, read by Argo's executor to fetch the labelled data (infra/workflows.yaml data_prefix). The
  step containers themselves get only VAULT_* and read their S3 and MLflow credentials from Vault.
- The step pods run as the training service account (its Vault role binds `spira-training`); in
  Kubernetes it may only report its step's results (workflowtaskresults create/patch), nothing else.
- The Sensor's service account may create Workflows and read the WorkflowTemplate, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.components.helm import pinned_release
from infra.environments import declared
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

# What each identity may do, and nothing more.
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


def workflows_values(environment: str, engine: str) -> dict:
    namespace = declared().workload_namespace
    return {
        "crds": {"install": True, "keep": True},
        "singleNamespace": False,
        "controller": {"workflowNamespaces": [namespace]},
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
        self.register_outputs(
            {"workflowsNamespace": WORKFLOWS_NAMESPACE, "eventsNamespace": EVENTS_NAMESPACE}
        )
