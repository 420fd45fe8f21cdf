"""The clinical gate's reviewed margins per environment: `spira_core/clinical/thresholds/<env>.yaml`.

One file per environment, read by training's publish stage, `spira gate clinical` and the gate image's Job
alike (the package travels in all three). A malformed file stops the gate before anything is scored (exit
2), with the offending field named: a typo that silently loosened a margin would promote a worse model.
`parse` is pure; `load` reads the packaged file or a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spira_core.clinical.stats import METRICS

THRESHOLDS_DIR = Path(__file__).parent / "thresholds"
ENVIRONMENTS = tuple(sorted(p.stem for p in THRESHOLDS_DIR.glob("*.yaml")))
SCHEMA_VERSION = 1


class ClinicalThresholdsError(ValueError):
    def __init__(self, source: str, field: str, problem: str):
        self.source, self.field = source, field
        super().__init__(f"clinical thresholds {source}: field '{field}': {problem}")


@dataclass(frozen=True)
class ClinicalThresholds:
    environment: str
    # non-inferiority: the candidate's 95 % interval of (candidate - baseline) must stay above -margin
    margins: dict[str, float]
    # absolute floors on the candidate's point values, overall (the only judgement when there is no baseline)
    floors: dict[str, float]
    # a stratum with fewer patients or fewer controls than this is reported, not judged
    min_per_class: int
    bootstrap_samples: int
    seed: int
    confidence: float = 0.95
    description: str = ""
    source: str = "<memory>"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items()}


_FIELDS = {"schema_version", "environment", "description", "margins", "floors", "strata", "bootstrap"}


def _number(source: str, where: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ClinicalThresholdsError(source, where, f"must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _integer(source: str, where: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ClinicalThresholdsError(source, where, f"must be an integer >= {low}, got {value!r}")
    return value


def _mapping(source: str, where: str, value: Any, known: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ClinicalThresholdsError(source, where or "<root>", "must be a mapping")
    for key in sorted(set(value) - known):
        raise ClinicalThresholdsError(source, f"{where}.{key}".lstrip("."), "is not a known field")
    for key in sorted(required - set(value)):
        raise ClinicalThresholdsError(source, f"{where}.{key}".lstrip("."), "is required")
    return value


def parse(document: Any, source: str = "<memory>") -> ClinicalThresholds:
    doc = _mapping(source, "", document, _FIELDS, _FIELDS - {"description"})
    if doc["schema_version"] != SCHEMA_VERSION:
        raise ClinicalThresholdsError(source, "schema_version", f"must be {SCHEMA_VERSION}")
    if not isinstance(doc["environment"], str) or not doc["environment"]:
        raise ClinicalThresholdsError(source, "environment", "must be a non-empty string")
    margins = _mapping(source, "margins", doc["margins"], set(METRICS), set(METRICS))
    floors = _mapping(source, "floors", doc["floors"], set(METRICS), set(METRICS))
    strata = _mapping(source, "strata", doc["strata"], {"min_per_class"}, {"min_per_class"})
    boot = _mapping(
        source, "bootstrap", doc["bootstrap"], {"samples", "seed", "confidence"}, {"samples", "seed"}
    )
    return ClinicalThresholds(
        environment=doc["environment"],
        margins={m: _number(source, f"margins.{m}", margins[m], 0.0, 0.5) for m in METRICS},
        floors={m: _number(source, f"floors.{m}", floors[m], 0.0, 1.0) for m in METRICS},
        min_per_class=_integer(source, "strata.min_per_class", strata["min_per_class"], 1),
        bootstrap_samples=_integer(source, "bootstrap.samples", boot["samples"], 100),
        seed=_integer(source, "bootstrap.seed", boot["seed"], 0),
        confidence=_number(source, "bootstrap.confidence", boot.get("confidence", 0.95), 0.5, 0.999),
        description=str(doc.get("description") or ""),
        source=source,
    )


def resolve(name_or_path: str | Path) -> Path:
    """A bare environment name (local, staging, production) means the packaged file for it."""
    return (
        THRESHOLDS_DIR / f"{name_or_path}.yaml" if str(name_or_path) in ENVIRONMENTS else Path(name_or_path)
    )


def load(name_or_path: str | Path) -> ClinicalThresholds:
    import yaml

    path = resolve(name_or_path)
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ClinicalThresholdsError(str(path), "<file>", f"cannot be read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ClinicalThresholdsError(str(path), "<file>", f"is not valid YAML: {exc}") from exc
    return parse(loaded, str(path))
