"""Which digest `spira promote revert` goes back to: records newest first, the aborted one excluded."""

from __future__ import annotations

import pytest

from ci.promotion import TestedRecord
from ci.revert import REVERTED, RevertError, Target, choose_target, revert_message, revert_trailers

MODEL, LOADTEST = "spira-model", "spira-loadtest"


def digest(c: str) -> str:
    return "sha256:" + c * 64


def rec(commit: str, d: str, version: str, image: str = MODEL) -> TestedRecord:
    return TestedRecord(commit * 40, image, digest(d), version, f"run-{version}")


# newest first, as `git log` lists them: v3 (bad, now deployed), v2, v1; each with its loadtest image
HISTORY = [
    rec("c", "c", "3"),
    rec("c", "9", "3", LOADTEST),
    rec("b", "b", "2"),
    rec("b", "8", "2", LOADTEST),
    rec("a", "a", "1"),
    rec("a", "7", "1", LOADTEST),
]


def deployed_as_recorded(record: TestedRecord) -> str:
    return record.digest


def test_the_target_is_the_newest_record_other_than_the_aborted_digest_with_its_loadtest_image():
    target = choose_target(HISTORY, digest("c"), set(), deployed_as_recorded)
    assert target.record.model_version == "2"
    assert target.images == {MODEL: digest("b"), LOADTEST: digest("8")}
    assert "the digest being reverted" in target.skipped[0]


def test_a_digest_an_earlier_revert_took_away_is_never_restored():
    target = choose_target(HISTORY, digest("c"), {digest("b")}, deployed_as_recorded)
    assert target.record.model_version == "1"
    assert any("an earlier revert took it away" in s for s in target.skipped)


def test_a_record_whose_commit_does_not_deploy_its_digest_is_passed_over():
    def deployed(record: TestedRecord) -> str:
        return digest("0") if record.model_version == "2" else record.digest

    target = choose_target(HISTORY, digest("c"), set(), deployed)
    assert target.record.model_version == "1"
    assert any("does not deploy it" in s for s in target.skipped)


def test_a_digest_whose_signature_or_provenance_fails_is_passed_over_with_the_reason():
    def trusted(record: TestedRecord) -> tuple[bool, str]:
        return (False, "REFUSED spira-model: no signature") if record.model_version == "2" else (True, "")

    target = choose_target(HISTORY, digest("c"), set(), deployed_as_recorded, trusted)
    assert target.record.model_version == "1"
    assert any("no signature" in s for s in target.skipped)


def test_no_earlier_passing_digest_is_a_clear_error():
    with pytest.raises(RevertError, match="no earlier passing digest"):
        choose_target(HISTORY[:2], digest("c"), set(), deployed_as_recorded)
    with pytest.raises(RevertError, match="no promotion record at all"):
        choose_target([], digest("c"), set(), deployed_as_recorded)


def test_the_message_carries_the_analysis_and_the_trailers_record_both_digests():
    target = Target(HISTORY[2], {MODEL: digest("b"), LOADTEST: digest("8")}, ())
    message = revert_message("staging", "staging", digest("c"), target, "error-rate: 0.31 > 0.05")
    assert "error-rate: 0.31 > 0.05" in message and digest("c") in message and "run-2" in message
    lines = revert_trailers(digest("c"), "c" * 40, target)
    assert lines[0] == f"{REVERTED}: {MODEL}@{digest('c')}"
    assert f"Spira-Tested-Image: {MODEL}@{digest('b')}" in lines
    assert "Spira-Model-Version: 2" in lines and "Spira-Test-Run: run-2" in lines


def test_the_promotion_commit_names_its_evidence_bundle_in_a_trailer():
    from ci.promotion import trailers

    lines = trailers({"model": digest("b")}, "run-2", "2", "s3://spira-local-features/evidence/x/ sha256:ab")
    assert lines[-1] == "Spira-Evidence: s3://spira-local-features/evidence/x/ sha256:ab"
    assert not any(
        line.startswith("Spira-Evidence") for line in trailers({"model": digest("b")}, "run-2", "2")
    )
