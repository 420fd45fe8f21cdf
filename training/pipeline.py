"""The pipeline's service layer: each stage given its adapters, and all four in order.

Stage commands share one signature (dataset CSV, noise CSV, preset): each recomputes the content keys of
the stages before it from the data and the preset (cheap: hashing, no training) and reads their outputs
from the store, so every stage can run as its own container with no shared local state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.artifacts import find_output
from training.ports import ArtifactStore, Clock, ModelRegistry, RandomSource
from training.presets import Preset
from training.stages import evaluate, features, publish, train
from training.stages.common import Stage, StageResult, run_stage
from training.stages.features import DataInputs

# The stages in order; each reads only stages before it. A new stage is added here and nowhere else: the
# CLI's commands and the keys are derived from this tuple.
STAGES: tuple[Stage, ...] = (features.STAGE, train.STAGE, evaluate.STAGE, publish.STAGE)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


def no_progress(iterable: Any, **_: Any) -> Any:
    return iterable


@dataclass
class Pipeline:
    store: ArtifactStore
    clock: Clock
    random: RandomSource
    preset: Preset
    data: DataInputs
    # the registry is only needed by publish; a factory keeps MLflow out of the other stages
    registry_factory: Callable[[], tuple[ModelRegistry, str]] | None = None
    progress: Callable[..., Any] = no_progress
    tags: Mapping[str, str] = field(default_factory=dict)
    # the clinical gate's margins publish judges with (spira_core/clinical/thresholds/<name>.yaml)
    clinical_thresholds: str = "local"
    _registry: tuple[ModelRegistry, str] | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_csv(cls, dataset_csv: Path, noise_csv: Path, holdout: Any = None, **kwargs: Any) -> Pipeline:
        """`holdout`: the frozen holdout (spira_core.clinical.source.OpenHoldout) or None."""
        return cls(data=DataInputs.load(dataset_csv, noise_csv, holdout), **kwargs)

    def registry(self) -> tuple[ModelRegistry, str]:
        """The model registry and where it is (part of publish's key), created on first use."""
        if self._registry is None:
            if self.registry_factory is None:
                raise RuntimeError("publish needs a model registry")
            self._registry = self.registry_factory()
        return self._registry

    def _stage(self, name: str) -> Stage:
        return next(s for s in STAGES if s.name == name)

    def key(self, name: str) -> str:
        """A stage's content key, computed without running anything (the keys of the stages it needs
        first)."""
        return self._keys_until(name)[name]

    def _keys_until(self, name: str) -> dict[str, str]:
        keys: dict[str, str] = {}
        for stage in STAGES:
            keys[stage.name] = stage.key_of(self, keys)
            if stage.name == name:
                return keys
        raise KeyError(f"no stage {name!r}; stages: {', '.join(STAGE_NAMES)}")

    def fingerprint(self) -> dict[str, dict[str, Any]]:
        """Every stage's content key and whether its output is complete in the store; nothing runs. The
        last stage's key covers the data, the noise, the preset and the code of every stage: when its
        output is complete, a run would reuse everything (`spira pipeline fingerprint --check`)."""
        keys = self._keys_until(STAGE_NAMES[-1])
        return {
            name: {"key": key, "complete": find_output(self.store, name, key) is not None}
            for name, key in keys.items()
        }

    def run(self, name: str) -> StageResult:
        """Run one stage (or reuse its completed output); the stages it needs must be complete."""
        stage = self._stage(name)
        upstream = self._keys_until(name) if stage.needs else {}
        return run_stage(stage, self, self.store, self.clock, upstream)

    def run_all(self, on_stage: Callable[[StageResult], None] | None = None) -> list[StageResult]:
        results = []
        for name in STAGE_NAMES:
            result = self.run(name)
            results.append(result)
            if on_stage:
                on_stage(result)
        return results
