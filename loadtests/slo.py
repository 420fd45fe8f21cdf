"""SLO thresholds per environment: one versioned YAML file each, validated against a schema.

The files live in `loadtests/thresholds/<env>.yaml` and travel inside the loadtest image, so the gate in
a cluster judges with exactly the thresholds reviewed in git. A malformed file must stop the gate before
any load is sent (exit 2), with the offending field named, because a typo that silently loosened an SLO
would promote a bad model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_VERSION = 1
THRESHOLDS_DIR = Path(__file__).parent / "thresholds"
ENVIRONMENTS = ("local", "staging", "production")

_POSITIVE = {"type": "number", "exclusiveMinimum": 0}
_RATIO = {"type": "number", "minimum": 0, "maximum": 1}
_COUNT = {"type": "integer", "minimum": 0}
_AT_LEAST_ONE = {"type": "integer", "minimum": 1}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["schema_version", "environment", "slo", "load"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "environment": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "slo": {
            "type": "object",
            "additionalProperties": False,
            "required": ["latency_p95_ms", "latency_p99_ms", "max_error_ratio", "min_rps", "correctness"],
            "properties": {
                "latency_p95_ms": _POSITIVE,
                "latency_p99_ms": _POSITIVE,
                "max_error_ratio": _RATIO,
                "min_rps": {"type": "number", "minimum": 0},
                "correctness": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["min_checked_answers", "max_incorrect_answers"],
                    "properties": {
                        "min_checked_answers": _AT_LEAST_ONE,
                        "max_incorrect_answers": _COUNT,
                    },
                },
            },
        },
        # default load shape for this environment; command-line options override it
        "load": {
            "type": "object",
            "additionalProperties": False,
            "required": ["users", "spawn_rate", "duration_s", "max_requests"],
            "properties": {
                "users": _AT_LEAST_ONE,
                "spawn_rate": _POSITIVE,
                "duration_s": _POSITIVE,
                "max_requests": _AT_LEAST_ONE,
                "invalid_ratio": {"type": "number", "minimum": 0, "maximum": 0.5},
            },
        },
    },
}


class ThresholdsError(ValueError):
    """The thresholds file cannot be used; `field` is the dotted path of the (first) offending field."""

    def __init__(self, source: str, field: str, problem: str, more: list[tuple[str, str]] | None = None):
        self.source, self.field, self.problem = source, field, problem
        self.fields = [field] + [f for f, _ in more or []]
        message = f"thresholds {source}: field '{field}': {problem}"
        for other, why in more or []:
            message += f"; field '{other}': {why}"
        super().__init__(message)


@dataclass(frozen=True)
class LoadShape:
    users: int
    spawn_rate: float
    duration_s: float
    max_requests: int
    invalid_ratio: float = 0.05


@dataclass(frozen=True)
class Thresholds:
    environment: str
    schema_version: int
    latency_p95_ms: float
    latency_p99_ms: float
    max_error_ratio: float
    min_rps: float
    min_checked_answers: int
    max_incorrect_answers: int
    load: LoadShape
    source: str


def _named(error: jsonschema.ValidationError) -> list[tuple[str, str]]:
    """(dotted field, problem) for one schema error; a "required" error names each missing field."""
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        return [(".".join([*path, name]), "is required") for name in missing]
    if error.validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        return [
            (".".join([*path, name]), "is not a known field (a typo would silently drop an SLO)")
            for name in sorted(k for k in error.instance if k not in allowed)
        ]
    return [(".".join(path) or "<root>", error.message)]


def parse(document: Any, source: str = "<memory>") -> Thresholds:
    """Validate a loaded YAML document and build Thresholds; raises ThresholdsError naming the field."""
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(
        validator.iter_errors(document), key=lambda e: (list(map(str, e.absolute_path)), e.validator)
    )
    if errors:
        # jsonschema reports each missing field once per required keyword: keep one of each
        named = list(dict.fromkeys(item for e in errors for item in _named(e)))
        raise ThresholdsError(source, *named[0], more=named[1:])
    slo, load = document["slo"], document["load"]
    if slo["latency_p99_ms"] < slo["latency_p95_ms"]:
        raise ThresholdsError(source, "slo.latency_p99_ms", "must be >= slo.latency_p95_ms")
    return Thresholds(
        environment=document["environment"],
        schema_version=document["schema_version"],
        latency_p95_ms=float(slo["latency_p95_ms"]),
        latency_p99_ms=float(slo["latency_p99_ms"]),
        max_error_ratio=float(slo["max_error_ratio"]),
        min_rps=float(slo["min_rps"]),
        min_checked_answers=int(slo["correctness"]["min_checked_answers"]),
        max_incorrect_answers=int(slo["correctness"]["max_incorrect_answers"]),
        load=LoadShape(
            users=int(load["users"]),
            spawn_rate=float(load["spawn_rate"]),
            duration_s=float(load["duration_s"]),
            max_requests=int(load["max_requests"]),
            invalid_ratio=float(load.get("invalid_ratio", 0.05)),
        ),
        source=source,
    )


def resolve(name_or_path: str | Path) -> Path:
    """A bare environment name (local, staging, production) means the packaged file for it."""
    if str(name_or_path) in ENVIRONMENTS:
        return THRESHOLDS_DIR / f"{name_or_path}.yaml"
    return Path(name_or_path)


def load(name_or_path: str | Path) -> Thresholds:
    path = resolve(name_or_path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ThresholdsError(str(path), "<file>", f"cannot be read: {exc.strerror or exc}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "<file>"
        raise ThresholdsError(str(path), where, f"is not valid YAML: {exc}") from exc
    return parse(document, str(path))
