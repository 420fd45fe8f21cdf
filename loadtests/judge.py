"""Judge a finished load run against the SLO thresholds: pure functions, no I/O.

Inputs are Locust's final JSON stats (one entry per request name, with bucketed response times and
per-second request counts) and the correctness counters the locustfile wrote. The output is a Verdict:
one Check per SLO with what was measured, the threshold, pass/fail and a reason a person can act on.

Definitions (docs/gate.md explains them):
- latency p95/p99: over valid uploads only (refusing a broken upload is fast and would flatter them),
  computed from Locust's response-time buckets exactly as Locust's report does;
- error ratio: failed requests / all requests (a broken upload refused with 4xx is a success);
- sustained requests/s: completions per second after ramp-up, up to the last completion;
- correctness: enough valid answers checked, and no more incorrect ones than allowed.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from loadtests.slo import Thresholds

VALID = "/predict [valid]"
INVALID = "/predict [invalid]"


@dataclass(frozen=True)
class Entry:
    name: str
    num_requests: int
    num_failures: int
    response_times: dict[int, int]  # bucketed ms -> count, as Locust keeps them
    reqs_per_sec: dict[int, int]  # unix second -> requests started in it
    start_time: float
    last_request_timestamp: float | None

    @classmethod
    def from_locust(cls, raw: dict[str, Any]) -> Entry:
        return cls(
            name=raw["name"],
            num_requests=int(raw["num_requests"]),
            num_failures=int(raw["num_failures"]),
            response_times={int(float(k)): int(v) for k, v in raw["response_times"].items()},
            reqs_per_sec={int(float(k)): int(v) for k, v in raw.get("num_reqs_per_sec", {}).items()},
            start_time=float(raw["start_time"]),
            last_request_timestamp=raw.get("last_request_timestamp"),
        )


def percentile(response_times: dict[int, int], q: float) -> int | None:
    """Locust's own percentile over its buckets (stats.calculate_response_time_percentile)."""
    total = sum(response_times.values())
    if total == 0:
        return None
    wanted = int(total * q)
    processed = 0
    for rt in sorted(response_times, reverse=True):
        processed += response_times[rt]
        if total - processed <= wanted:
            return rt
    return 0


def sustained_rps(entries: list[Entry], ramp_up_s: float) -> float | None:
    """Requests/s completed after ramp-up, over time; None when the run had no requests.

    The clock starts at the first whole second after ramp-up (first completion + users / spawn rate) and
    stops at the last completion. A rate over time, not a mean of per-second counts: with latencies over
    a second, completions come in lumps and many one-second buckets are empty though the server is busy.
    Runs too short for a one-second steady window fall back to the whole run.
    """
    per_second: Counter[int] = Counter()
    for e in entries:
        per_second.update(e.reqs_per_sec)
    total = sum(per_second.values())
    if not total:
        return None
    first = min(e.start_time for e in entries)
    last = max((e.last_request_timestamp or e.start_time) for e in entries)
    steady_from = math.floor(first + ramp_up_s) + 1
    if last - steady_from >= 1.0:
        return sum(n for s, n in per_second.items() if s >= steady_from) / (last - steady_from)
    return total / max(last - first, 1.0)


@dataclass(frozen=True)
class Check:
    slo: str
    measured: float | None
    threshold: float
    comparison: str  # "<=" or ">="
    passed: bool
    reason: str
    unit: str = ""


@dataclass
class Verdict:
    passed: bool
    checks: list[Check]
    totals: dict[str, Any] = field(default_factory=dict)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def as_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks], "totals": self.totals}


def _fmt(value: float) -> str:
    return f"{value:.3g}" if value < 10 else f"{value:.0f}"


def _status_story(status: dict[str, int]) -> str:
    """'HTTP 500 x12, no answer x2': what the failed requests were answered."""
    parts = []
    for code, n in sorted(status.items(), key=lambda kv: -kv[1]):
        parts.append(f"{'no answer' if code == '0' else 'HTTP ' + code} x{n}")
    return ", ".join(parts)


def _latency(name: str, entries: dict[str, Entry], q: float, limit: float) -> Check:
    slo = f"latency_p{round(q * 100)}_ms"
    valid = entries.get(VALID)
    measured = percentile(valid.response_times, q) if valid else None
    if measured is None:
        return Check(slo, None, limit, "<=", False, "no valid upload was answered, latency unknown", "ms")
    passed = measured <= limit
    verb = "within" if passed else "above"
    reason = f"{name} of {valid.num_requests} valid uploads is {measured} ms, {verb} {_fmt(limit)} ms"
    return Check(slo, float(measured), limit, "<=", passed, reason, "ms")


def _errors(entries: dict[str, Entry], counters: dict[str, Any], limit: float) -> Check:
    total = sum(e.num_requests for e in entries.values())
    failures = sum(e.num_failures for e in entries.values())
    if total == 0:
        return Check("error_ratio", None, limit, "<=", False, "no request completed", "")
    ratio = failures / total
    passed = ratio <= limit
    reason = f"{failures} of {total} requests failed ({ratio:.2%})"
    bad_valid = {s: n for s, n in counters.get("valid", {}).get("status", {}).items() if s != "200"}
    bad_invalid = {
        s: n for s, n in counters.get("invalid", {}).get("status", {}).items() if not 400 <= int(s) < 500
    }
    if bad_valid:
        reason += f"; valid uploads answered {_status_story(bad_valid)}"
    if bad_invalid:
        reason += f"; broken uploads not refused with 4xx: {_status_story(bad_invalid)}"
    if not passed:
        reason += f"; the limit is {limit:.2%}"
    return Check("error_ratio", ratio, limit, "<=", passed, reason, "")


def _throughput(entries: dict[str, Entry], ramp_up_s: float, limit: float) -> Check:
    rps = sustained_rps(list(entries.values()), ramp_up_s)
    if rps is None:
        return Check("min_rps", None, limit, ">=", False, "no request completed", "req/s")
    passed = rps >= limit
    verb = "meets" if passed else "is below"
    return Check(
        "min_rps",
        rps,
        limit,
        ">=",
        passed,
        f"sustained {rps:.1f} req/s {verb} the minimum {_fmt(limit)} req/s",
        "req/s",
    )


def _correctness(counters: dict[str, Any], t: Thresholds) -> Check:
    valid = counters.get("valid", {})
    checked, incorrect = int(valid.get("checked", 0)), int(valid.get("incorrect", 0))
    expected = counters.get("expected_model_version")
    limit = float(t.max_incorrect_answers)
    if incorrect > t.max_incorrect_answers:
        problems = ", ".join(f"{p} x{n}" for p, n in sorted(valid.get("problems", {}).items()))
        reason = f"{incorrect} of {checked} valid answers incorrect ({problems})"
        if "wrong_model_version" in valid.get("problems", {}):
            served = ", ".join(f"'{v}'" for v in valid.get("model_versions", {}) if v != expected)
            reason += f"; served model_version {served}, expected '{expected}'"
        if examples := valid.get("examples"):
            reason += f"; e.g. {examples[0].get('answer')}"
        return Check("correctness", float(incorrect), limit, "<=", False, reason, "answers")
    reason = (
        f"{checked - incorrect} of {checked} valid answers correct "
        f"(probability in [0, 1], label known, model_version '{expected}')"
    )
    return Check("correctness", float(incorrect), limit, "<=", True, reason, "answers")


def _coverage(counters: dict[str, Any], t: Thresholds) -> Check:
    checked = int(counters.get("valid", {}).get("checked", 0))
    limit = float(t.min_checked_answers)
    if checked < t.min_checked_answers:
        return Check(
            "answers_checked",
            float(checked),
            limit,
            ">=",
            False,
            f"only {checked} valid answers checked; {t.min_checked_answers} needed to judge "
            "correctness (run longer or with more users)",
            "answers",
        )
    return Check(
        "answers_checked",
        float(checked),
        limit,
        ">=",
        True,
        f"{checked} valid answers checked, at least {t.min_checked_answers} needed",
        "answers",
    )


def judge(
    raw_entries: list[dict[str, Any]], counters: dict[str, Any], t: Thresholds, ramp_up_s: float
) -> Verdict:
    """The verdict of a run: every SLO must pass."""
    entries = {e.name: e for e in map(Entry.from_locust, raw_entries)}
    checks = [
        _latency("p95", entries, 0.95, t.latency_p95_ms),
        _latency("p99", entries, 0.99, t.latency_p99_ms),
        _errors(entries, counters, t.max_error_ratio),
        _throughput(entries, ramp_up_s, t.min_rps),
        _correctness(counters, t),
        _coverage(counters, t),
    ]
    totals = {
        "requests": sum(e.num_requests for e in entries.values()),
        "failures": sum(e.num_failures for e in entries.values()),
        "valid_requests": entries[VALID].num_requests if VALID in entries else 0,
        "invalid_requests": entries[INVALID].num_requests if INVALID in entries else 0,
        "valid_answers_checked": int(counters.get("valid", {}).get("checked", 0)),
        "valid_answers_incorrect": int(counters.get("valid", {}).get("incorrect", 0)),
        "stopped_by_max_requests": bool(counters.get("stopped_by_max_requests", False)),
    }
    return Verdict(all(c.passed for c in checks), checks, totals)
