"""The continuous-training declaration (infra/environments.yaml `training_workflow`), read once for the
Pulumi program (infra/components/workflows.py) and the WorkflowTemplate's renderer (spira/workflow/).

Pure: no Pulumi, no Kubernetes client. A stage without an entry under `steps` runs with `step_defaults`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from infra.environments import INFRA_DIR, DeclarationError, Grant, declared

# one declaration file: the environments and, beside them, continuous training
DECLARATION = INFRA_DIR / "environments.yaml"
# The webhook EventSource of the triggers (spira/workflow/events.py renders it); Argo Events names its
# Service <name>-eventsource-svc, which Alertmanager's receiver and the bucket notifications post to.
EVENT_SOURCE = "spira-training"
# The object-store user Argo's executor fetches the input artifact with (the artifact repository's key):
# its name in the store is spira-<env>-<this>, its grants artifact_grants(env).
ARTIFACT_READER = "argo-artifacts"
# What fetching an artifact needs: get the objects and list the prefix (Argo lists a key that is a folder).
ARTIFACT_ACTIONS = ("GetObject", "ListBucket")
# The labelled data's two lists, under data_prefix; the recordings they list are paths relative to them. A new
# or changed list is new labelled data: uploaders write the recordings first and the lists last, so one
# dataset change is one event, not one per recording.
DATA_LISTS = ("dataset.csv", "noise.csv")
# The object store's file events that mean new data (SeaweedFS's filer event types; deletes retrain nothing).
LABELLED_EVENTS = ("create", "update")


@dataclass(frozen=True)
class StepSettings:
    cpu: str
    memory: str
    deadline_s: int
    retries: int
    backoff_s: int


@dataclass(frozen=True)
class TrainingWorkflow:
    template: str
    service_account: str
    data_prefix: str
    gpu_stages: tuple[str, ...]
    defaults: StepSettings
    overrides: dict[str, dict[str, Any]]
    presets: dict[str, str]
    schedules: dict[str, str]
    events_port: int
    drift_alert: str

    def step(self, stage: str) -> StepSettings:
        """A stage's step settings: the defaults with the stage's own entry over them."""
        return StepSettings(**{**self.defaults.__dict__, **self.overrides.get(stage, {})})

    def preset(self, env: str) -> str:
        return self.presets[declared().environment(env).name]

    def schedule(self, env: str) -> str:
        return self.schedules[declared().environment(env).name]


def _settings(raw: dict[str, Any]) -> StepSettings:
    return StepSettings(
        cpu=str(raw["cpu"]),
        memory=str(raw["memory"]),
        deadline_s=int(raw["deadline_s"]),
        retries=int(raw["retries"]),
        backoff_s=int(raw["backoff_s"]),
    )


def parse(raw: Any) -> TrainingWorkflow:
    try:
        section = raw["training_workflow"]
        fields = set(StepSettings.__dataclass_fields__)
        overrides = {str(k): dict(v) for k, v in (section.get("steps") or {}).items()}
        for stage, entry in overrides.items():
            unknown = set(entry) - fields
            if unknown:
                raise DeclarationError(
                    f"infra/environments.yaml: training_workflow.steps.{stage} has unknown {sorted(unknown)}"
                )
        workflow = TrainingWorkflow(
            template=str(section["template"]),
            service_account=str(section["service_account"]),
            data_prefix=str(section["data_prefix"]),
            gpu_stages=tuple(str(s) for s in section["gpu_stages"]),
            defaults=_settings(section["step_defaults"]),
            overrides=overrides,
            presets={str(k): str(v) for k, v in section["preset"].items()},
            schedules={str(k): str(v) for k, v in section["schedule"].items()},
            events_port=int(section["events"]["port"]),
            drift_alert=str(section["events"]["drift_alert"]),
        )
    except (KeyError, TypeError) as exc:
        raise DeclarationError(f"infra/environments.yaml: training_workflow lacks {exc}") from exc
    for name, per_env, envs in (
        ("preset", workflow.presets, declared().names),
        ("schedule", workflow.schedules, declared().names),
    ):
        if set(per_env) != set(envs):
            raise DeclarationError(
                f"infra/environments.yaml: training_workflow.{name} must name exactly "
                f"{sorted(envs)}, not {sorted(per_env)}"
            )
    return workflow


@cache
def training_workflow() -> TrainingWorkflow:
    return parse(yaml.safe_load(DECLARATION.read_text()))


def event_source_url() -> str:
    """The EventSource's in-cluster Service address (its webhook endpoints are paths under it)."""
    port = training_workflow().events_port
    namespace = declared().workload_namespace
    return f"http://{EVENT_SOURCE}-eventsource-svc.{namespace}.svc.cluster.local:{port}"


def webhook_url(endpoint: str) -> str:
    """Where to post to one of the EventSource's webhook endpoints (`drift`, `labelled`)."""
    return f"{event_source_url()}/{endpoint}"


def labelled_folder(env: str) -> str:
    """The labelled data's folder as the SeaweedFS filer names it (bucket B is the folder /buckets/B)."""
    bucket = declared().buckets(env)["features_bucket"]
    return f"/buckets/{bucket}/{training_workflow().data_prefix}"


def labelled_key_pattern(env: str) -> str:
    """The regular expression (RE2 and Python alike) of the keys whose events are new labelled data."""
    lists = "|".join(_literal(name) for name in DATA_LISTS)
    return f"^{_literal(labelled_folder(env))}({lists})$"


def _literal(text: str) -> str:
    """`text` matched literally: its regex metacharacters escaped (not `-` or `/`, literal outside classes)."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)


def seaweedfs_notification(env: str) -> str:
    """The filer's notification.toml (the chart mounts `filer.notificationConfig`): SeaweedFS's webhook
    notifier (filer 4.x `notification.webhook`) posts each create or update under the labelled folder to the
    EventSource's `/labelled`, as JSON `{"event_type", "key", "message"}`; the Sensor keeps the lists' events.
    It retries with backoff while the EventSource is away."""
    lines = [
        "[notification.webhook]",
        "enabled = true",
        f"endpoint = {json.dumps(webhook_url('labelled'))}",
        "timeout_seconds = 10",
        "max_retries = 5",
        "backoff_seconds = 3",
        "max_backoff_seconds = 60",
        "workers = 1",
        f"event_types = {json.dumps(list(LABELLED_EVENTS))}",
        f"path_prefixes = {json.dumps([labelled_folder(env)])}",
    ]
    return "\n".join(lines) + "\n"


def artifact_user(env: str) -> str:
    declared().cluster(env)
    return f"spira-{env}-{ARTIFACT_READER}"


def artifact_grants(env: str) -> tuple[Grant, ...]:
    """What the artifact repository's key may do: read (get, list) the labelled data under data_prefix of
    the features bucket, nothing else. Narrowed from the training workload's declared grants
    (infra/environments.yaml `object_store_access.training`), which must cover it: Argo's executor fetches
    for the training steps, so it never holds more than they do."""
    bucket = declared().buckets(env)["features_bucket"]
    prefix = training_workflow().data_prefix
    covering = [
        g
        for g in declared().object_store_grants(env, "training")
        if g.bucket == bucket and prefix.startswith(g.prefix) and set(ARTIFACT_ACTIONS) <= set(g.actions)
    ]
    if not covering:
        raise DeclarationError(
            f"infra/environments.yaml: object_store_access.training grants no {list(ARTIFACT_ACTIONS)} on "
            f"features_bucket under {prefix!r}, which the artifact repository reads for the training steps"
        )
    return (Grant(bucket, prefix, ARTIFACT_ACTIONS),)
