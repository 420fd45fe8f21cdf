"""Judging a run: Locust's final stats plus the correctness counters give one check per SLO."""

from __future__ import annotations

import pytest

from loadtests import slo
from loadtests.judge import INVALID, VALID, Entry, judge, percentile, sustained_rps

T0 = 1_800_000_000


def thresholds(**slo_changes) -> slo.Thresholds:
    document = {
        "schema_version": 1,
        "environment": "test",
        "slo": {
            "latency_p95_ms": 300,
            "latency_p99_ms": 600,
            "max_error_ratio": 0.02,
            "min_rps": 5,
            "correctness": {"min_checked_answers": 10, "max_incorrect_answers": 0},
        },
        "load": {"users": 4, "spawn_rate": 4, "duration_s": 5, "max_requests": 1000},
    }
    document["slo"].update(slo_changes)
    return slo.parse(document, "test")


def entry(name, times: dict[int, int], failures=0, per_second=None) -> dict:
    n = sum(times.values())
    per_second = per_second or {
        T0 + 0: n // 5,
        T0 + 1: n // 5,
        T0 + 2: n // 5,
        T0 + 3: n // 5,
        T0 + 4: n - 4 * (n // 5),
    }
    return {
        "name": name,
        "method": "POST",
        "num_requests": n,
        "num_failures": failures,
        "response_times": {str(k): v for k, v in times.items()},  # JSON keys are strings
        "num_reqs_per_sec": {str(k): v for k, v in per_second.items()},
        "start_time": T0 + 0.2,
        "last_request_timestamp": T0 + 4.9,
    }


def counters(
    checked=95, incorrect=0, problems=None, versions=None, valid_status=None, invalid_status=None
) -> dict:
    return {
        "expected_model_version": "v7",
        "stopped_by_max_requests": False,
        "valid": {
            "checked": checked,
            "incorrect": incorrect,
            "problems": problems or {},
            "model_versions": versions or {"v7": checked},
            "status": valid_status or {"200": checked},
            "examples": [],
        },
        "invalid": {"status": invalid_status or {"422": 5}},
    }


def healthy_stats() -> list[dict]:
    return [entry(VALID, {20: 80, 40: 10, 90: 4, 250: 1}), entry(INVALID, {2: 5})]


def failed(verdict) -> set[str]:
    return {c.slo for c in verdict.failed()}


def test_percentiles_follow_locusts_bucket_arithmetic():
    times = {10: 90, 100: 8, 1000: 2}  # 100 requests
    assert percentile(times, 0.50) == 10
    assert percentile(times, 0.95) == 100
    assert percentile(times, 0.99) == 1000
    assert percentile({}, 0.95) is None


def timed(per_second: dict[int, int], start: float, last: float) -> Entry:
    raw = entry(VALID, {10: sum(per_second.values())}, per_second=per_second)
    return Entry.from_locust({**raw, "start_time": start, "last_request_timestamp": last})


def test_sustained_rps_leaves_out_the_ramp_up():
    e = timed({T0: 1, T0 + 1: 2, T0 + 2: 10, T0 + 3: 10, T0 + 4: 10, T0 + 5: 5}, T0 + 0.5, T0 + 5.5)
    assert sustained_rps([e], ramp_up_s=1.0) == pytest.approx(
        35 / 3.5
    )  # seconds 2-5, clock from T0+2 to T0+5.5
    assert sustained_rps([e], ramp_up_s=0.0) < sustained_rps([e], ramp_up_s=1.0)


def test_a_silent_second_inside_the_run_lowers_the_sustained_rate():
    steady = timed({T0: 5, T0 + 1: 10, T0 + 2: 10, T0 + 3: 10, T0 + 4: 5}, T0 + 0.5, T0 + 4.5)
    stalled = timed({T0: 5, T0 + 1: 10, T0 + 3: 10, T0 + 4: 5}, T0 + 0.5, T0 + 4.5)
    assert sustained_rps([stalled], 0.0) == pytest.approx(25 / 3.5)
    assert sustained_rps([stalled], 0.0) < sustained_rps([steady], 0.0)


def test_slow_answers_arriving_in_lumps_do_not_read_as_zero_throughput():
    # 4 users, 1.5 s per answer: completions every 1.6 s, so some one-second buckets are empty
    e = timed({T0 + 1: 4, T0 + 3: 4, T0 + 4: 4, T0 + 6: 4}, T0 + 1.5, T0 + 6.3)
    assert 2.0 < sustained_rps([e], ramp_up_s=1.0) < 4.0


def test_a_run_too_short_for_a_steady_window_is_rated_over_its_whole_length():
    e = timed({T0: 3, T0 + 1: 5}, T0 + 0.2, T0 + 1.4)
    assert sustained_rps([e], ramp_up_s=1.0) == pytest.approx(8 / 1.2)


def test_a_healthy_run_passes_every_slo():
    verdict = judge(healthy_stats(), counters(), thresholds(), ramp_up_s=1.0)
    assert verdict.passed, [c.reason for c in verdict.failed()]
    assert [c.slo for c in verdict.checks] == [
        "latency_p95_ms",
        "latency_p99_ms",
        "error_ratio",
        "min_rps",
        "correctness",
        "answers_checked",
    ]
    assert verdict.totals["requests"] == 100


def test_slow_valid_uploads_fail_latency_but_fast_refusals_do_not_hide_them():
    stats = [entry(VALID, {900: 95}), entry(INVALID, {2: 500})]
    verdict = judge(stats, counters(), thresholds(), ramp_up_s=1.0)
    assert failed(verdict) == {"latency_p95_ms", "latency_p99_ms"}
    p95 = verdict.checks[0]
    assert p95.measured == 900 and "above 300 ms" in p95.reason


def test_server_errors_fail_the_error_ratio_and_say_which_status_codes():
    stats = [entry(VALID, {20: 95}, failures=10), entry(INVALID, {2: 5})]
    verdict = judge(stats, counters(valid_status={"200": 85, "500": 10}), thresholds(), ramp_up_s=1.0)
    assert failed(verdict) == {"error_ratio"}
    check = next(c for c in verdict.checks if c.slo == "error_ratio")
    assert check.measured == 0.1
    assert "HTTP 500 x10" in check.reason


def test_broken_uploads_that_are_accepted_fail_the_error_ratio():
    stats = [entry(VALID, {20: 95}), entry(INVALID, {2: 5}, failures=5)]
    verdict = judge(stats, counters(invalid_status={"200": 5}), thresholds(), ramp_up_s=1.0)
    assert failed(verdict) == {"error_ratio"}
    assert "not refused with 4xx: HTTP 200 x5" in verdict.checks[2].reason


def test_a_wrong_model_version_fails_correctness_naming_served_and_expected_versions():
    c = counters(incorrect=95, problems={"wrong_model_version": 95}, versions={"v6": 95})
    verdict = judge(healthy_stats(), c, thresholds(), ramp_up_s=1.0)
    assert failed(verdict) == {"correctness"}
    reason = next(c for c in verdict.checks if c.slo == "correctness").reason
    assert "served model_version 'v6', expected 'v7'" in reason


def test_one_probability_out_of_range_fails_correctness_when_none_is_allowed():
    c = counters(incorrect=1, problems={"probability_out_of_range": 1})
    verdict = judge(healthy_stats(), c, thresholds(), ramp_up_s=1.0)
    assert failed(verdict) == {"correctness"}
    assert "probability_out_of_range x1" in verdict.checks[4].reason


def test_too_few_checked_answers_fail_because_the_run_proves_nothing():
    verdict = judge(healthy_stats(), counters(checked=4), thresholds(), ramp_up_s=1.0)
    assert failed(verdict) == {"answers_checked"}


def test_too_little_throughput_fails_min_rps():
    verdict = judge(healthy_stats(), counters(), thresholds(min_rps=500), ramp_up_s=1.0)
    assert failed(verdict) == {"min_rps"}


def test_a_run_without_any_request_fails_every_slo():
    verdict = judge([], counters(checked=0, valid_status={}, invalid_status={}), thresholds(), ramp_up_s=1.0)
    assert failed(verdict) == {
        "latency_p95_ms",
        "latency_p99_ms",
        "error_ratio",
        "min_rps",
        "answers_checked",
    }
    assert not verdict.passed
