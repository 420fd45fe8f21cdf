"""The worker gate's judgement (docs/queue.md): a new worker version, run as a preview consumer of the
mirrored job stream, against what the active workers stored for the same jobs. Pure: states in, verdict out.

The preview must serve the model version the Rollout announces. For each job both finished:
- the same model version on both sides: the same answer (status; the refusal's code; label, window count,
  and probability within `tolerance`): new worker code with the same model must change nothing;
- a new model version: its answer must be well formed (a label, a finite probability in [0, 1], the same
  window count and the same refusals, which depend on the upload only); the model's quality is the HTTP
  gate's to judge on the same digest, so labels may differ (counted, not failed).
A job the preview dead-lettered that the active workers finished is a disagreement. Fewer than `min_jobs`
compared jobs is no verdict (no traffic in the window): the gate fails closed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from spira_core.queue import FAILED, FINISHED, JobState

PASSED, DISAGREED, COULD_NOT_RUN, INCONCLUSIVE = 0, 1, 2, 3


@dataclass(frozen=True)
class GateRules:
    expect_model_version: str
    min_jobs: int = 50
    tolerance: float = 1e-6


@dataclass(frozen=True)
class Disagreement:
    job_id: str
    reason: str


@dataclass(frozen=True)
class Verdict:
    compared: int
    same_model: int  # jobs both sides answered with the same model version
    label_changes: int  # jobs a new model version labels differently (information, not a failure)
    disagreements: tuple[Disagreement, ...]
    min_jobs: int

    @property
    def exit_code(self) -> int:
        if self.disagreements:
            return DISAGREED
        return PASSED if self.compared >= self.min_jobs else INCONCLUSIVE

    @property
    def passed(self) -> bool:
        return self.exit_code == PASSED

    def to_json(self) -> str:
        return json.dumps(
            {**asdict(self), "passed": self.passed, "exit_code": self.exit_code}, sort_keys=True
        )


def _well_formed(result: Mapping[str, object]) -> str | None:
    p = result.get("probability")
    if not isinstance(p, (int, float)) or not math.isfinite(p) or not 0.0 <= p <= 1.0:
        return f"probability {p!r} is not a number in [0, 1]"
    if not result.get("label"):
        return "no label"
    return None


def compare(active: JobState, preview: JobState, rules: GateRules) -> tuple[str | None, bool, bool]:
    """(why they disagree or None, whether both used the same model, whether the label changed)."""
    if preview.status not in FINISHED:
        return f"the preview left it {preview.status}", False, False
    if preview.status != active.status:
        a = active.error or {}
        p = preview.error or {}
        return (
            f"active {active.status} {a.get('error', '')} vs preview {preview.status} {p.get('error', '')}",
            False,
            False,
        )
    if preview.status == FAILED:
        a, p = (active.error or {}).get("error"), (preview.error or {}).get("error")
        return (None if a == p else f"refused as {p!r}, the active workers as {a!r}"), False, False
    a, p = active.result or {}, preview.result or {}
    if str(p.get("model_version")) != rules.expect_model_version:
        why = f"the preview serves model version {p.get('model_version')!r}, the Rollout announces {rules.expect_model_version!r}"
        return why, False, False
    broken = _well_formed(p)
    if broken:
        return f"the preview's answer is malformed: {broken}", False, False
    if p.get("windows") != a.get("windows"):
        return f"{p.get('windows')} windows, the active workers cut {a.get('windows')}", False, False
    same_model = str(a.get("model_version")) == str(p.get("model_version"))
    label_changed = p.get("label") != a.get("label")
    if same_model:
        diff = abs(float(p["probability"]) - float(a.get("probability", math.nan)))
        if not diff <= rules.tolerance:
            return (
                f"probability {p['probability']} vs {a.get('probability')} (|diff| {diff:.3g} > {rules.tolerance:g})",
                True,
                label_changed,
            )
        if label_changed:
            return f"label {p.get('label')!r} vs {a.get('label')!r} with the same model", True, True
    return None, same_model, label_changed


def judge(
    active: Mapping[str, JobState],
    preview: Mapping[str, JobState],
    preview_dead: Mapping[str, str],
    rules: GateRules,
) -> Verdict:
    """Every job the preview saw and the active workers finished, compared."""
    disagreements: list[Disagreement] = []
    compared = same_model = label_changes = 0
    for job_id in sorted(set(preview) | set(preview_dead)):
        theirs = active.get(job_id)
        if theirs is None or theirs.status not in FINISHED:
            continue  # not finished on the live side yet: nothing to compare against
        compared += 1
        if job_id in preview_dead:
            disagreements.append(
                Disagreement(job_id, f"the preview dead-lettered it: {preview_dead[job_id]}")
            )
            continue
        why, same, changed = compare(theirs, preview[job_id], rules)
        same_model += same
        label_changes += changed and not same
        if why:
            disagreements.append(Disagreement(job_id, why))
    return Verdict(compared, same_model, label_changes, tuple(disagreements), rules.min_jobs)
