"""The stage template: what a stage declares, and the one `run_stage` that owns its cache, timing and writing.

A stage declares its name, the stages it reads (`needs`), the parameters that name its output besides those
(`params`: data fingerprints, preset fields) and `compute`. Its content key is the sha256 of those
parameters, the keys of the stages it needs and the code version of its module together with every project
module that module imports (found by reading the imports, so no list is kept by hand): an edit to any of
them, or to any stage before it, gives a new key, and the stage runs again; anything else reuses the output.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from training.artifacts import StageOutput, code_version, find_output, module_closure, stage_key, write_output
from training.ports import ArtifactStore, Clock, ModelRegistry, RandomSource

if TYPE_CHECKING:
    from training.presets import Preset
    from training.stages.features import DataInputs


class StageNotReady(RuntimeError):
    """A stage's input stage has not completed for these inputs."""


@dataclass(frozen=True)
class StageResult:
    stage: str
    key: str
    skipped: bool  # True when a completed output with this key already existed
    output: StageOutput
    seconds: float


class RunContext(Protocol):
    """What stages read from the run besides the store (the pipeline provides it)."""

    data: DataInputs
    preset: Preset
    random: RandomSource
    progress: Callable[..., Any]
    tags: Mapping[str, str]
    clinical_thresholds: str

    def registry(self) -> tuple[ModelRegistry, str]: ...


@dataclass(frozen=True)
class StageInputs:
    """The stage's own key and the completed outputs of the stages it needs."""

    key: str
    outputs: Mapping[str, StageOutput]

    def __getitem__(self, stage: str) -> StageOutput:
        return self.outputs[stage]


@dataclass(frozen=True)
class Built:
    files: dict[str, bytes]
    info: dict[str, Any]


@dataclass(frozen=True)
class Stage:
    name: str
    module: str  # where compute lives: the root of the code part of the key
    needs: tuple[str, ...]
    params: Callable[[RunContext], dict[str, Any]]
    compute: Callable[[RunContext, StageInputs], Built]

    def summary(self) -> str:
        """The first line of the stage module's docstring (the CLI's help for the stage's command)."""
        doc = sys.modules[self.module].__doc__ or self.name
        return doc.strip().splitlines()[0]

    def code_modules(self) -> tuple[str, ...]:
        return module_closure(self.module)

    def key_inputs(self, ctx: RunContext, upstream: Mapping[str, str]) -> dict[str, Any]:
        return {
            **self.params(ctx),
            **{name: upstream[name] for name in self.needs},
            "code": code_version(self.code_modules()),
        }

    def key_of(self, ctx: RunContext, upstream: Mapping[str, str]) -> str:
        return stage_key(self.name, self.key_inputs(ctx, upstream))


def run_stage(
    stage: Stage, ctx: RunContext, store: ArtifactStore, clock: Clock, upstream: Mapping[str, str]
) -> StageResult:
    """Reuse the stage's completed output for these inputs, or compute and write it (manifest last)."""
    start = clock.now()
    inputs = stage.key_inputs(ctx, upstream)
    key = stage_key(stage.name, inputs)
    done = find_output(store, stage.name, key)
    if done is not None:
        return StageResult(stage.name, key, True, done, clock.now() - start)
    outputs = {}
    for name in stage.needs:
        found = find_output(store, name, upstream[name])
        if found is None:
            raise StageNotReady(
                f"{stage.name} needs {name} {upstream[name]}, which is not in the store: "
                f"run 'spira pipeline {name}' first"
            )
        outputs[name] = found
    built = stage.compute(ctx, StageInputs(key, outputs))
    out = write_output(store, stage.name, key, inputs, built.files, built.info)
    return StageResult(stage.name, key, False, out, clock.now() - start)
