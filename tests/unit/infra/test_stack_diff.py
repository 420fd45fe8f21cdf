"""Staging and production differ exactly as infra/diff-allowlist.yaml says, and the judge is strict."""

from __future__ import annotations

from infra import stackdiff
from infra.offline import Plan, Recorded


def test_the_staging_production_difference_equals_the_allowlist(staging: Plan, production: Plan) -> None:
    differences = stackdiff.diff(staging, "staging", production, "production")
    verdict = stackdiff.judge(differences, stackdiff.load_allowlist())
    assert verdict.unexpected == [], "differences outside infra/diff-allowlist.yaml"
    assert verdict.unused == [], "allowlist entries that no longer match any difference"
    categories = {a.category for a in stackdiff.load_allowlist() if any(a.covers(d) for d in differences)}
    assert categories == set(stackdiff.CATEGORIES)


def test_the_branch_is_one_of_the_differences(staging: Plan, production: Plan) -> None:
    differences = stackdiff.diff(staging, "staging", production, "production")
    branch = [d for d in differences if d.path == "spec.source.targetRevision"]
    assert [(d.left, d.right) for d in branch] == [("'<env>'", "'main'")]


def _plan(stack: str, inputs: dict) -> Plan:
    urn = f"urn:pulumi:{stack}::p::spira:x:C$kubernetes:helm.sh/v3:Release::vault"
    return Plan(stack, [Recorded(urn, "kubernetes:helm.sh/v3:Release", "vault", inputs, "", True)])


def test_an_unlisted_difference_is_reported() -> None:
    a = _plan("staging", {"version": "0.31.0", "values": {"server": {"ha": {"replicas": 3}}}})
    b = _plan("production", {"version": "0.32.0", "values": {"server": {"ha": {"replicas": 5}}}})
    verdict = stackdiff.judge(stackdiff.diff(a, "staging", b, "production"), stackdiff.load_allowlist())
    assert [d.path for d in verdict.unexpected] == ["version"]


def test_the_environment_name_alone_is_not_a_difference() -> None:
    a = _plan("staging", {"values": {"path": "spira/staging/serving"}})
    b = _plan("production", {"values": {"path": "spira/production/serving"}})
    assert stackdiff.diff(a, "staging", b, "production") == []


def test_a_stale_allowlist_entry_is_reported() -> None:
    a = _plan("staging", {"values": {}})
    verdict = stackdiff.judge(stackdiff.diff(a, "staging", a, "staging"), stackdiff.load_allowlist())
    assert verdict.unexpected == [] and len(verdict.unused) == len(stackdiff.load_allowlist())
