"""What a correct answer of the serving contract looks like, checked without any I/O.

The load test counts a valid upload as *served* when the HTTP status is 200, and as *correct* only when
the JSON body also satisfies the contract: a probability in [0, 1], a label in {patient, control}, and
the model_version the gate expects to be serving. A candidate that answers fast but wrong must not be
promoted, so correctness is judged separately from latency and errors.
"""

from __future__ import annotations

import math
from typing import Any

LABELS = frozenset({"patient", "control"})

# Problem codes (stable: they key the counters and the verdict's reasons).
MALFORMED = "malformed"  # not a JSON object, or a required field missing or of the wrong type
PROBABILITY_OUT_OF_RANGE = "probability_out_of_range"
BAD_LABEL = "bad_label"
WRONG_MODEL_VERSION = "wrong_model_version"
PROBLEMS = (MALFORMED, PROBABILITY_OUT_OF_RANGE, BAD_LABEL, WRONG_MODEL_VERSION)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_prediction(body: Any, expected_model_version: str | None) -> list[str]:
    """Problem codes for one 200 answer to a valid upload; an empty list means correct.

    expected_model_version None means "not known yet": the version is then not judged here (the gate
    always resolves one before the load starts, so this only happens when the locustfile runs alone).
    """
    if not isinstance(body, dict):
        return [MALFORMED]
    problems: list[str] = []
    probability = body.get("probability")
    if not _is_number(probability) or not _is_number(body.get("threshold")):
        problems.append(MALFORMED)
    elif not math.isfinite(probability) or not 0.0 <= probability <= 1.0:
        problems.append(PROBABILITY_OUT_OF_RANGE)
    if body.get("label") not in LABELS:
        problems.append(BAD_LABEL)
    version = body.get("model_version")
    if not isinstance(version, str) or not version:
        problems.append(MALFORMED)
    elif expected_model_version is not None and version != expected_model_version:
        problems.append(WRONG_MODEL_VERSION)
    if not isinstance(body.get("windows"), int) or isinstance(body.get("windows"), bool):
        problems.append(MALFORMED)
    return sorted(set(problems))


def is_refusal(status: int) -> bool:
    """A broken upload is handled correctly only when refused as the client's fault (4xx)."""
    return 400 <= status < 500
