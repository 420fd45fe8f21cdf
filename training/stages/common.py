"""What every stage returns, and the error for running a stage before the one it needs."""

from __future__ import annotations

from dataclasses import dataclass

from training.artifacts import StageOutput


class StageNotReady(RuntimeError):
    """A stage's input stage has not completed for these inputs."""


@dataclass(frozen=True)
class StageResult:
    stage: str
    key: str
    skipped: bool  # True when a completed output with this key already existed
    output: StageOutput
    seconds: float
