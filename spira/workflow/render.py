"""The training pipeline as Argo Workflows objects, generated from the stage list the CLI uses, delivered
the GitOps way (docs/workflows.md).

Two halves, one truth:

- the generator (`generated_objects(env)`): plain dicts from `training.pipeline.STAGES` and the
  declaration (infra/environments.yaml `training_workflow`). `spira manifests golden` writes the base's objects (`local`, one
  resource per file, argocd/base/training-*.yaml) and each cluster's JSON patch of what differs
  (argocd/overlays/<env>/training-*-patch.yaml: the workflow's arguments, the schedule, the bucket);
  `spira manifests check` fails when a committed file differs from it;
- the render (`render_workflow_objects(env, image=None)`): those kinds picked out of the kustomize build of
  the environment's tree, i.e. exactly what Argo CD applies, the training image set by kustomize's images
  transformer from the single `spira-training` pin in argocd/base/kustomization.yaml (`image` replaces it,
  by digest only).

The objects:

- the WorkflowTemplate: one container step per stage (its command is the stage's own CLI command,
  `spira pipeline <stage>`, which reuses the stage's completed output when its content key is already in
  the object store: the content keys are the memoization), wired into a DAG by each stage's `needs`; a
  `scheduled` entry point whose first step (`spira pipeline fingerprint --check`) skips the DAG when the
  data and code are unchanged; a `candidate` step after publish that asks GitHub to open the change to
  staging when publish registered a new candidate. What differs by environment is the template's
  `spec.arguments` (`env`, `preset`, `vault-role`, `vault-secret-path`), which the steps reference as
  `{{workflow.parameters.NAME}}`, so an overlay changes four values, whatever the number of stages;
- the CronWorkflow that runs `scheduled` on the environment's schedule;
- the Argo Events objects that submit `scheduled` on new labelled data and on the drift alert
  (spira/workflow/events.py).

Every step: the training image by digest, only VAULT_ADDR / VAULT_ROLE / VAULT_SECRET_PATH in its
environment (the S3 and MLflow credentials are read from Vault at run time, as every workload does),
resource requests, a deadline and retries with exponential backoff. The stages the declaration names in
`gpu_stages` run on the GPU pool (node selector, toleration and the GPU resource of infra/gpu_pool.yaml).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from infra import contracts
from infra.environments import declared
from infra.vault import layout
from infra.workflows import StepSettings, training_workflow

DIGEST_REF = re.compile(r"^[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?@sha256:[0-9a-f]{64}$")
API_VERSION = "argoproj.io/v1alpha1"
VAULT_SERVICE = "training"
# Where the step containers find things (the labelled data fetched by Argo, the stage's outcome).
DATA_DIR = "/data"
OUTCOME = "/tmp/outcome.json"
CHANGED = "/tmp/changed"
PIPELINE = "pipeline"
SCHEDULED = "scheduled"
CHECK = "fingerprint-check"
CANDIDATE = "candidate"
LABELS = {"app.kubernetes.io/name": "spira-training", "app.kubernetes.io/part-of": "spira"}
# The kustomize image name the steps carry in argocd/base; the images transformer sets the pinned digest
# (argocd/base/workflow-transform.yaml teaches it where a WorkflowTemplate's images are).
IMAGE_NAME = "spira-training"
# The kinds of continuous training, in the order `spira workflow render` prints them.
KINDS = ("WorkflowTemplate", "CronWorkflow", "EventBus", "EventSource", "Sensor")
# The environment the base is generated for: the base left alone is the local environment.
BASE_ENV = "local"
PARAMETERS = ("env", "preset", "vault-role", "vault-secret-path")
PARAMETER = re.compile(r"\{\{workflow\.parameters\.([a-z-]+)\}\}")


REPO = Path(__file__).resolve().parents[2]


def pinned_image(root: Path = REPO) -> str:
    """The training image as the GitOps base pins it: `registry/spira/training@sha256:...`."""
    from ci.set_image import KUSTOMIZATION, SetImageError, pinned_ref

    try:
        return pinned_ref((root / KUSTOMIZATION).read_text(), "training")
    except (OSError, SetImageError) as exc:
        raise ValueError(f"no pinned training image: {exc}") from exc


def stage_list() -> tuple[Any, ...]:
    """The pipeline's stages, in order (the one list the CLI's commands are generated from)."""
    from training.pipeline import STAGES

    return STAGES


def _meta(name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": declared().workload_namespace,
        "labels": {**LABELS, "app.kubernetes.io/component": component},
    }


def parameter(name: str) -> str:
    """A reference to one of the template's per-environment arguments, as Argo substitutes it."""
    if name not in PARAMETERS:
        raise KeyError(name)
    return f"{{{{workflow.parameters.{name}}}}}"


def arguments(env: str) -> dict[str, str]:
    """What differs by environment in the WorkflowTemplate: its arguments' values."""
    return {
        "env": declared().environment(env).name,
        "preset": training_workflow().preset(env),
        "vault-role": layout.role_name(env, VAULT_SERVICE),
        "vault-secret-path": layout.secret_ref(env, VAULT_SERVICE),
    }


def resolve_parameters(template: dict[str, Any]) -> dict[str, Any]:
    """The template with every `{{workflow.parameters.NAME}}` replaced by its argument's value, as Argo does
    when it runs a step (what `spira workflow play` and the image check run)."""
    values = {p["name"]: p["value"] for p in template["spec"].get("arguments", {}).get("parameters", [])}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str):
            return PARAMETER.sub(lambda m: values[m.group(1)], node)
        return node

    return walk(template)


def vault_env(env: str) -> list[dict[str, str]]:
    """The runtime secret contract: the three VAULT_* variables and nothing else (the role and the secret
    path are the environment's: the template's arguments)."""
    return [
        {"name": "VAULT_ADDR", "value": declared().service("vault").url},
        {"name": "VAULT_ROLE", "value": parameter("vault-role")},
        {"name": "VAULT_SECRET_PATH", "value": parameter("vault-secret-path")},
    ]


def _volumes() -> list[dict[str, Any]]:
    ca = declared().vault_ca
    return [
        {"name": "tmp", "emptyDir": {"sizeLimit": "8Gi"}},
        {
            "name": "vault-token",
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "token"}},
                    {"configMap": {"name": ca.configmap, "items": [{"key": ca.key, "path": "ca.crt"}]}},
                ]
            },
        },
    ]


def _container(env: str, image: str, command: list[str], settings: StepSettings, gpu: bool) -> dict[str, Any]:
    requests = {"cpu": settings.cpu, "memory": settings.memory}
    limits = {"memory": settings.memory}
    if gpu:
        resource = contracts.gpu_pool().resource
        requests[resource] = limits[resource] = "1"
    return {
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command[:1],
        "args": command[1:],
        "env": vault_env(env),
        "resources": {"requests": requests, "limits": limits},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "vault-token", "mountPath": "/var/run/secrets/vault", "readOnly": True},
        ],
    }


def _data_artifact() -> dict[str, Any]:
    """The labelled data (dataset.csv, noise.csv, recordings), fetched from the artifact repository: the
    features bucket under the declared prefix."""
    return {"name": "data", "path": DATA_DIR, "s3": {"key": training_workflow().data_prefix}}


def _data_args(env: str) -> list[str]:
    return [
        "--data",
        f"{DATA_DIR}/dataset.csv",
        "--noise",
        f"{DATA_DIR}/noise.csv",
        "--preset",
        parameter("preset"),
        "--clinical-thresholds",
        parameter("env"),
        "--no-progress",
    ]


def _step(name: str, env: str, image: str, command: list[str], settings: StepSettings, gpu: bool) -> dict:
    template: dict[str, Any] = {
        "name": name,
        "activeDeadlineSeconds": settings.deadline_s,
        "retryStrategy": {
            "limit": settings.retries,
            "retryPolicy": "Always",
            "backoff": {"duration": f"{settings.backoff_s}s", "factor": 2},
        },
        "inputs": {"artifacts": [_data_artifact()]},
        "container": _container(env, image, command, settings, gpu),
    }
    if gpu:
        pool = contracts.gpu_pool()
        template["nodeSelector"] = pool.node_selector
        template["tolerations"] = [pool.toleration]
    return template


def stage_template(stage: Any, env: str, image: str) -> dict[str, Any]:
    """One stage's step: `spira pipeline <stage>` with the data, writing its outcome as an output."""
    wf = training_workflow()
    command = ["spira", "pipeline", stage.name, *_data_args(env), "--json-out", OUTCOME]
    template = _step(stage.name, env, image, command, wf.step(stage.name), stage.name in wf.gpu_stages)
    template["outputs"] = {"parameters": [{"name": "outcome", "valueFrom": {"path": OUTCOME}}]}
    return template


def check_template(env: str, image: str) -> dict[str, Any]:
    """The scheduled run's first step: `changed` or `unchanged` (the last stage's key already complete)."""
    command = ["spira", "pipeline", "fingerprint", *_data_args(env), "--check", "--result-file", CHANGED]
    template = _step(CHECK, env, image, command, training_workflow().defaults, gpu=False)
    template["outputs"] = {"parameters": [{"name": "result", "valueFrom": {"path": CHANGED}}]}
    return template


def candidate_template(env: str, image: str) -> dict[str, Any]:
    """After publish: when it registered a new candidate, dispatch the change to staging (GitHub)."""
    command = [
        "spira",
        "workflow",
        "candidate",
        "--env",
        parameter("env"),
        "--outcome",
        "{{inputs.parameters.outcome}}",
        "--train-outcome",
        "{{inputs.parameters.train-outcome}}",
    ]
    template = _step(CANDIDATE, env, image, command, training_workflow().defaults, gpu=False)
    template["inputs"] = {"parameters": [{"name": "outcome"}, {"name": "train-outcome"}]}
    return template


def dag_template(stages: tuple[Any, ...]) -> dict[str, Any]:
    names = [s.name for s in stages]
    tasks = []
    for stage in stages:
        task: dict[str, Any] = {"name": stage.name, "template": stage.name}
        # a stage reads the stages it needs; the one before it in the list runs first as well, so the
        # DAG keeps the list's order (a stage's key needs every earlier key)
        before = names[: names.index(stage.name)]
        deps = sorted(set(stage.needs) | set(before[-1:]), key=names.index)
        if deps:
            task["dependencies"] = deps
        tasks.append(task)
    last = names[-1]
    tasks.append(
        {
            "name": CANDIDATE,
            "template": CANDIDATE,
            "dependencies": [last],
            "arguments": {
                "parameters": [
                    {"name": "outcome", "value": f"{{{{tasks.{last}.outputs.parameters.outcome}}}}"},
                    {"name": "train-outcome", "value": "{{tasks.train.outputs.parameters.outcome}}"},
                ]
            },
        }
    )
    return {"name": PIPELINE, "dag": {"tasks": tasks}}


def scheduled_template() -> dict[str, Any]:
    return {
        "name": SCHEDULED,
        "steps": [
            [{"name": "check", "template": CHECK}],
            [
                {
                    "name": "train",
                    "template": PIPELINE,
                    "when": "{{steps.check.outputs.parameters.result}} == changed",
                }
            ],
        ],
    }


def _check_digest(image: str) -> str:
    if not DIGEST_REF.match(image):
        raise ValueError(f"the training image must be referenced by digest (name@sha256:...), not {image!r}")
    return image


def workflow_template(env: str, image: str = IMAGE_NAME) -> dict[str, Any]:
    """The WorkflowTemplate of `env`; its steps name `image`: the kustomize name (what argocd/base holds) or
    a digest."""
    declared().environment(env)
    if image != IMAGE_NAME:
        _check_digest(image)
    stages = stage_list()
    wf = training_workflow()
    templates = [
        dag_template(stages),
        scheduled_template(),
        *(stage_template(stage, env, image) for stage in stages),
        check_template(env, image),
        candidate_template(env, image),
    ]
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowTemplate",
        "metadata": _meta(wf.template, "training"),
        "spec": {
            "entrypoint": PIPELINE,
            "arguments": {"parameters": [{"name": k, "value": v} for k, v in arguments(env).items()]},
            "serviceAccountName": wf.service_account,
            "podMetadata": {"labels": {**LABELS, "app.kubernetes.io/component": "training"}},
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumes": _volumes(),
            # one training run at a time per environment: two would race on the registry's aliases
            "synchronization": {"mutexes": [{"name": wf.template}]},
            "ttlStrategy": {"secondsAfterCompletion": 7 * 24 * 3600},
            "podGC": {"strategy": "OnPodSuccess"},
            "templates": templates,
        },
    }


def cron_workflow(env: str) -> dict[str, Any]:
    wf = training_workflow()
    return {
        "apiVersion": API_VERSION,
        "kind": "CronWorkflow",
        "metadata": _meta(wf.template, "training-schedule"),
        "spec": {
            "schedules": [wf.schedule(env)],
            "timezone": "UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "workflowSpec": {"workflowTemplateRef": {"name": wf.template}, "entrypoint": SCHEDULED},
        },
    }


def generated_objects(env: str, image: str = IMAGE_NAME) -> list[dict[str, Any]]:
    """What the generator makes for `env`, in KINDS order: the base holds `generated_objects(BASE_ENV)`,
    each overlay patches it into `generated_objects(env)` (spira/manifests/training.py)."""
    from spira.workflow.events import trigger_objects

    return [workflow_template(env, image), cron_workflow(env), *trigger_objects(env)]


def set_image(objects: list[dict[str, Any]], image: str) -> list[dict[str, Any]]:
    """The objects with every step of the WorkflowTemplate running `image` (by digest)."""
    _check_digest(image)
    out = copy.deepcopy(objects)
    for doc in out:
        if doc["kind"] == "WorkflowTemplate":
            for template in doc["spec"]["templates"]:
                if "container" in template:
                    template["container"]["image"] = image
    return out


def render_workflow_objects(env: str, image: str | None = None) -> list[dict[str, Any]]:
    """What Argo CD applies for `env` of the continuous-training kinds: picked out of the kustomize build of
    its tree (`spira manifests render ENV`; `local`: the base), in KINDS order. Every step runs the pinned
    training image, set by kustomize from argocd/base/kustomization.yaml, or `image` (by digest)."""
    from spira.manifests import render as manifests

    docs = [
        d for d in manifests.render_docs(env) if d.get("apiVersion") == API_VERSION and d.get("kind") in KINDS
    ]
    docs.sort(key=lambda d: KINDS.index(d["kind"]))
    return set_image(docs, image) if image is not None else docs
