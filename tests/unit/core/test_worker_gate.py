"""The worker gate's judgement: a preview that answers like the active workers passes, and each way a new
worker version could go wrong on live traffic fails it (spira_core.worker_gate)."""

from __future__ import annotations

import json

from spira_core.queue import DONE, FAILED, RUNNING, JobState
from spira_core.worker_gate import DISAGREED, INCONCLUSIVE, PASSED, GateRules, judge

RULES = GateRules(expect_model_version="7", min_jobs=3, tolerance=1e-6)


def done(p: float, version: str = "7", label: str | None = None, windows: int = 2) -> JobState:
    label = label or ("patient" if p >= 0.5 else "control")
    result = {"probability": p, "label": label, "model_version": version, "windows": windows}
    return JobState(DONE, result=result)


def refused(code: str) -> JobState:
    return JobState(FAILED, error={"error": code, "detail": "..."})


def jobs(n: int, state) -> dict[str, JobState]:
    return {f"job-{i}": state(i) for i in range(n)}


def test_the_same_answers_for_enough_jobs_pass():
    active = jobs(3, lambda i: done(0.1 * i))
    verdict = judge(active, jobs(3, lambda i: done(0.1 * i + 1e-8)), {}, RULES)
    assert (verdict.exit_code, verdict.compared, verdict.same_model) == (PASSED, 3, 3)
    assert json.loads(verdict.to_json())["passed"] is True


def test_a_probability_beyond_the_tolerance_with_the_same_model_fails_naming_the_job():
    active = jobs(3, lambda i: done(0.1 * i))
    preview = {**jobs(3, lambda i: done(0.1 * i)), "job-1": done(0.1 + 1e-4)}
    verdict = judge(active, preview, {}, RULES)
    assert verdict.exit_code == DISAGREED
    ((job_id, why),) = [(d.job_id, d.reason) for d in verdict.disagreements]
    assert job_id == "job-1" and "|diff| 0.0001 > 1e-06" in why


def test_a_preview_serving_another_model_version_than_announced_fails():
    active = jobs(3, lambda i: done(0.2))
    verdict = judge(active, jobs(3, lambda i: done(0.2, version="6")), {}, RULES)
    assert verdict.exit_code == DISAGREED
    assert "serves model version '6', the Rollout announces '7'" in verdict.disagreements[0].reason


def test_a_new_model_version_may_change_labels_but_not_refusals_or_windows():
    active = jobs(3, lambda i: done(0.4, version="6"))
    preview = jobs(3, lambda i: done(0.6, version="7"))
    verdict = judge(active, preview, {}, RULES)
    assert (verdict.exit_code, verdict.label_changes, verdict.same_model) == (PASSED, 3, 0)
    preview["job-0"] = done(0.6, version="7", windows=3)
    preview["job-1"] = done(float("nan"), version="7", label="patient")
    reasons = [d.reason for d in judge(active, preview, {}, RULES).disagreements]
    assert reasons == [
        "3 windows, the active workers cut 2",
        "the preview's answer is malformed: probability nan is not a number in [0, 1]",
    ]


def test_refusals_must_match_code_for_code():
    active = {"a": refused("too_short"), "b": refused("silent_audio"), "c": done(0.3)}
    preview = {"a": refused("too_short"), "b": refused("too_short"), "c": refused("silent_audio")}
    reasons = sorted(d.reason for d in judge(active, preview, {}, RULES).disagreements)
    assert reasons == [
        "active done  vs preview failed silent_audio",
        "refused as 'too_short', the active workers as 'silent_audio'",
    ]


def test_a_job_the_preview_dead_lettered_but_the_active_workers_finished_fails():
    active = jobs(3, lambda i: done(0.3))
    verdict = judge(active, jobs(2, lambda i: done(0.3)), {"job-2": "ObjectMissing: recordings/ab"}, RULES)
    assert [d.reason for d in verdict.disagreements] == [
        "the preview dead-lettered it: ObjectMissing: recordings/ab"
    ]


def test_jobs_the_active_workers_have_not_finished_are_not_compared_and_too_few_is_no_verdict():
    active = {"job-0": done(0.3), "job-1": JobState(RUNNING)}
    verdict = judge(active, jobs(3, lambda i: done(0.3)), {}, RULES)
    assert (verdict.compared, verdict.exit_code) == (1, INCONCLUSIVE)
    assert not verdict.passed
