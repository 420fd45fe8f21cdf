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

from training.ports import ArtifactStore, Clock, ModelRegistry, RandomSource
from training.presets import Preset
from training.stages import evaluate as evaluate_stage
from training.stages import features as features_stage
from training.stages import publish as publish_stage
from training.stages import train as train_stage
from training.stages.common import StageResult
from training.stages.features import DataInputs

STAGES = ("features", "train", "evaluate", "publish")


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

    @classmethod
    def from_csv(cls, dataset_csv: Path, noise_csv: Path, **kwargs: Any) -> Pipeline:
        return cls(data=DataInputs.load(dataset_csv, noise_csv), **kwargs)

    # keys, computed without running anything
    def features_key(self) -> str:
        return features_stage.features_key(self.data, self.preset)

    def train_key(self) -> str:
        return train_stage.stage_key(
            train_stage.STAGE, train_stage.key_inputs(self.features_key(), self.preset)
        )

    def evaluate_key(self) -> str:
        inputs = evaluate_stage.key_inputs(self.features_key(), self.train_key())
        return evaluate_stage.stage_key(evaluate_stage.STAGE, inputs)

    # stages
    def features(self) -> StageResult:
        return features_stage.run(self.store, self.data, self.preset, self.clock, self.progress)

    def train(self) -> StageResult:
        meta = {"dataset_fingerprint": self.data.dataset_fingerprint}
        return train_stage.run(
            self.store, self.features_key(), self.preset, self.clock, self.random, self.progress, meta
        )

    def evaluate(self) -> StageResult:
        return evaluate_stage.run(
            self.store, self.features_key(), self.train_key(), self.clock, self.progress
        )

    def publish(self) -> StageResult:
        if self.registry_factory is None:
            raise RuntimeError("publish needs a model registry")
        registry, location = self.registry_factory()
        return publish_stage.run(
            self.store,
            registry,
            location,
            self.features_key(),
            self.train_key(),
            self.evaluate_key(),
            self.preset,
            self.clock,
            self.tags,
        )

    def run_all(self, on_stage: Callable[[StageResult], None] | None = None) -> list[StageResult]:
        results = []
        for name in STAGES:
            result = getattr(self, name)()
            results.append(result)
            if on_stage:
                on_stage(result)
        return results
