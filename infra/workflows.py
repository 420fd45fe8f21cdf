"""The continuous-training declaration (infra/workflows.yaml `training_workflow`), read once for the
Pulumi program (infra/components/workflows.py) and the WorkflowTemplate's renderer (spira/workflow/).

Pure: no Pulumi, no Kubernetes client. A stage without an entry under `steps` runs with `step_defaults`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from infra.environments import INFRA_DIR, DeclarationError, declared

DECLARATION = INFRA_DIR / "workflows.yaml"


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
        return self.schedules[declared().cluster(env).name]


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
                    f"infra/workflows.yaml: training_workflow.steps.{stage} has unknown {sorted(unknown)}"
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
        raise DeclarationError(f"infra/workflows.yaml: training_workflow lacks {exc}") from exc
    for name, per_env, envs in (
        ("preset", workflow.presets, declared().names),
        ("schedule", workflow.schedules, declared().clusters),
    ):
        if set(per_env) != set(envs):
            raise DeclarationError(
                f"infra/workflows.yaml: training_workflow.{name} must name exactly "
                f"{sorted(envs)}, not {sorted(per_env)}"
            )
    return workflow


@cache
def training_workflow() -> TrainingWorkflow:
    return parse(yaml.safe_load(DECLARATION.read_text()))
