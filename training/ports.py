"""Ports: the small interfaces the pipeline's stages use for the outside world.

Adapters (training/adapters/) implement them against S3, MLflow and the system clock; unit tests use fakes
that subclass the same classes (tests/fakes/training.py).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class ServiceUnavailable(RuntimeError):
    """An outside service (S3, MLflow) could not be reached or refused the request; the stage stops."""


class ArtifactMissing(KeyError):
    """No object under that key."""


class ArtifactStore(ABC):
    """Content-addressed blob store (S3 in production). Keys are '/'-separated relative names."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; raises ArtifactMissing if absent, ServiceUnavailable if unreachable."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...


@dataclass(frozen=True)
class RunRecord:
    """Everything one pipeline run logs to the tracking server."""

    name: str
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    # one mapping of metric name → value per epoch, logged with step = epoch
    epoch_metrics: tuple[Mapping[str, float], ...]
    tags: Mapping[str, str]
    artifacts: Mapping[str, bytes]  # relative path → bytes
    model_dir: Path  # the model bundle directory, logged under "model/"


@dataclass(frozen=True)
class ModelVersionInfo:
    version: str
    run_id: str
    tags: Mapping[str, str] = field(default_factory=dict)


class ModelRegistry(ABC):
    """Experiment tracking and model registry (MLflow in production)."""

    @abstractmethod
    def log_run(self, record: RunRecord) -> str:
        """Create a finished run with everything in `record`; returns its id."""

    @abstractmethod
    def register(self, model_name: str, run_id: str, tags: Mapping[str, str]) -> ModelVersionInfo:
        """Register the run's logged model as a new version of `model_name`."""

    @abstractmethod
    def version_by_alias(self, model_name: str, alias: str) -> ModelVersionInfo | None: ...

    @abstractmethod
    def set_alias(self, model_name: str, alias: str, version: str) -> None: ...

    @abstractmethod
    def set_version_tags(self, model_name: str, version: str, tags: Mapping[str, str]) -> None: ...

    @abstractmethod
    def download_model(self, model_name: str, version: str, directory: Path) -> Path:
        """The version's model bundle, written into `directory`; returns the bundle's folder."""


class Clock(ABC):
    """Wall time, for durations shown to people (never written into content-addressed outputs)."""

    @abstractmethod
    def now(self) -> float:
        """Seconds, monotonic."""


class RandomSource(ABC):
    """Named, independent random streams derived from one seed, so a stage's draws don't depend on order."""

    @property
    @abstractmethod
    def seed(self) -> int: ...

    def numpy(self, *names: str | int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *(_name_int(n) for n in names)])

    def int_seed(self, *names: str | int) -> int:
        return int(self.numpy(*names).integers(0, 2**31 - 1))


def _name_int(name: str | int) -> int:
    if isinstance(name, int):
        return name
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
