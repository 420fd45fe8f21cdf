"""The workflow's candidate step: a newly registered candidate becomes one `spira-candidate` dispatch (the
change to staging) carrying the model pin computed from the bundle in the object store; a reused publish
or a version that is not a candidate dispatches nothing."""

from __future__ import annotations

from typing import Any

import pytest

from spira.workflow.candidate import EVENT_TYPE, CandidateError, Dispatcher, dispatch_from_outcome
from spira_core.model import bundle_digest
from tests.fakes.training import InMemoryStore
from training.artifacts import write_output

BUNDLE = {"bundle.json": b'{"v": 1}', "weights.bin": b"\x00\x01weights"}


class RecordingDispatcher(Dispatcher):
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def dispatch(self, event_type: str, payload: dict[str, Any]) -> None:
        self.sent.append((event_type, payload))


def _outcome(candidate: bool, skipped: bool) -> dict[str, Any]:
    return {
        "stages": [{"stage": "publish", "key": "k1", "skipped": skipped, "seconds": 1.0}],
        "publish": {
            "model_name": "spira",
            "version": "7",
            "run_id": "r7",
            "candidate": candidate,
            "reason": "r",
        },
    }


TRAIN = {"stages": [{"stage": "train", "key": "t1", "skipped": False, "seconds": 9.0}]}


@pytest.fixture
def store() -> InMemoryStore:
    store = InMemoryStore()
    files = {f"model/{name}": data for name, data in BUNDLE.items()}
    write_output(store, "train", "t1", {}, {**files, "history.json": b"[]"})
    return store


def test_a_new_candidate_is_dispatched_once_with_the_pin_of_its_stored_bundle(store, tmp_path):
    for name, data in BUNDLE.items():
        (tmp_path / name).write_bytes(data)
    sent = RecordingDispatcher()
    message = dispatch_from_outcome("staging", _outcome(candidate=True, skipped=False), TRAIN, sent, store)
    ((event, payload),) = sent.sent
    assert event == EVENT_TYPE and "version 7" in message
    assert payload["environment"] == "staging" and payload["model_version"] == "7"
    assert payload["pin"] == {
        "bundle_key": "train/t1/model",
        "bundle_sha256": bundle_digest(tmp_path),
        "mlflow_version": "7",
        "name": "spira",
        "resolved_from": "candidate",
        "run_id": "r7",
    }


@pytest.mark.parametrize(("candidate", "skipped"), [(False, False), (True, True)])
def test_no_dispatch_when_not_a_candidate_or_when_publish_reused_an_earlier_run(store, candidate, skipped):
    sent = RecordingDispatcher()
    assert "nothing" in dispatch_from_outcome("staging", _outcome(candidate, skipped), TRAIN, sent, store)
    assert sent.sent == []


def test_an_outcome_without_publish_or_a_bundle_missing_from_the_store_is_refused(store):
    with pytest.raises(CandidateError, match="no publish stage"):
        dispatch_from_outcome("staging", {"stages": []}, TRAIN, RecordingDispatcher(), store)
    gone = {"stages": [{"stage": "train", "key": "t2"}]}
    with pytest.raises(CandidateError, match="not in the object store"):
        dispatch_from_outcome("staging", _outcome(True, False), gone, RecordingDispatcher(), store)


def test_the_candidate_step_runs_from_the_training_images_modules_alone():
    """The step runs `spira workflow candidate` in the training image, which carries only TRAINING_CONTEXT."""
    import subprocess
    import sys

    from ci.build import TRAINING_CONTEXT

    carried = {path.split("/")[0] for path in TRAINING_CONTEXT}
    absent = [m for m in ("infra", "ci", "serving", "intake", "loadtests") if m not in carried]
    absent += ["spira.manifests", "spira.stack", "spira.secrets"]
    assert {"spira/workflow/__init__.py", "spira/workflow/candidate.py"} <= set(TRAINING_CONTEXT)
    code = (
        "import sys\n"
        f"for name in {absent!r}: sys.modules[name] = None\n"
        "from spira.cli import main\n"
        "main(['workflow', 'candidate', '--help'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--train-outcome" in done.stdout
