"""A recording fake of serving.metrics.ModelChoiceMetrics (which model implementation serves)."""

from __future__ import annotations

from serving.metrics import ModelChoiceMetrics


class RecordingModelChoice(ModelChoiceMetrics):
    def __init__(self) -> None:
        self.fallbacks: list[str] = []

    def model_fallback(self, reason: str) -> None:
        self.fallbacks.append(reason)
