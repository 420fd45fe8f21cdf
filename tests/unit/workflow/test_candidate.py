"""The workflow's candidate step: a newly registered candidate becomes one `spira-candidate` dispatch (the
change to staging); a reused publish or a version that is not a candidate dispatches nothing."""

from __future__ import annotations

from typing import Any

import pytest

from spira.workflow.candidate import EVENT_TYPE, CandidateError, Dispatcher, dispatch_from_outcome


class RecordingDispatcher(Dispatcher):
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def dispatch(self, event_type: str, payload: dict[str, Any]) -> None:
        self.sent.append((event_type, payload))


def _outcome(candidate: bool, skipped: bool) -> dict[str, Any]:
    return {
        "stages": [{"stage": "publish", "key": "k1", "skipped": skipped, "seconds": 1.0}],
        "publish": {"model_name": "spira", "version": "7", "candidate": candidate, "reason": "r"},
    }


def test_a_new_candidate_is_dispatched_once_with_its_version_and_environment():
    sent = RecordingDispatcher()
    message = dispatch_from_outcome("staging", _outcome(candidate=True, skipped=False), sent)
    assert sent.sent == [
        (
            EVENT_TYPE,
            {"environment": "staging", "model_name": "spira", "model_version": "7", "publish_key": "k1"},
        )
    ]
    assert "version 7" in message


@pytest.mark.parametrize(("candidate", "skipped"), [(False, False), (True, True)])
def test_no_dispatch_when_not_a_candidate_or_when_publish_reused_an_earlier_run(candidate, skipped):
    sent = RecordingDispatcher()
    assert "nothing" in dispatch_from_outcome("staging", _outcome(candidate, skipped), sent)
    assert sent.sent == []


def test_an_outcome_without_publish_is_refused():
    with pytest.raises(CandidateError, match="no publish stage"):
        dispatch_from_outcome("staging", {"stages": []}, RecordingDispatcher())
