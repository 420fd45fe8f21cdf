"""The clinical gate's HTTP side against the fake prediction server (real sockets): verdict and report for a
candidate judged against itself, and exit 2 (no verdict) when it cannot judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spira.clinical.gate import COULD_NOT_RUN, PASS_CODE, main
from tests.fakes.prediction_server import Behaviour, FakePredictionServer
from tests.unit.training.conftest import write_dataset
from training import holdout as training_holdout

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def holdout_csv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clinical-fake")
    data = write_dataset(root / "data", n_per_class=6)
    frozen = training_holdout.freeze(data.dataset_csv, data.noise_csv)
    return training_holdout.write_folder(frozen, root / "frozen")


def test_a_candidate_judged_against_itself_passes_with_a_verdict_and_a_report(holdout_csv, tmp_path):
    with FakePredictionServer(Behaviour()) as server:
        code = main(
            [
                "--url",
                server.url,
                "--holdout",
                str(holdout_csv),
                "--baseline-url",
                server.url,
                "--out",
                str(tmp_path),
            ],
            headers=dict,
        )
    assert code == PASS_CODE
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert verdict["verdict"] == "PASS" and verdict["holdout"]["n"] == 24
    assert (
        verdict["candidate"]["model_version"] == "spira-fake-1" and verdict["candidate"]["threshold"] == 0.5
    )
    assert {"noise=clean", "noise=hospital", "sample_rate=16000", "channels=2"} <= {
        row["stratum"] for row in verdict["strata"]
    }
    assert "<svg" in (tmp_path / "report.html").read_text()


def test_a_candidate_answering_errors_cannot_be_judged(holdout_csv, tmp_path, capsys):
    with FakePredictionServer(Behaviour(error_fraction=1.0)) as server:
        code = main(["--url", server.url, "--holdout", str(holdout_csv), "--baseline-url", server.url], dict)
    assert code == COULD_NOT_RUN and "answered HTTP 500" in capsys.readouterr().out


def test_without_a_baseline_the_image_stops_before_any_request(holdout_csv, capsys):
    with FakePredictionServer(Behaviour()) as server:
        code = main(["--url", server.url, "--holdout", str(holdout_csv)], headers=dict)
    assert code == COULD_NOT_RUN and "pass --baseline-url" in capsys.readouterr().out


def test_a_holdout_recording_changed_after_freezing_is_refused(holdout_csv, tmp_path, capsys):
    import shutil

    copy = tmp_path / "frozen"
    shutil.copytree(holdout_csv.parent, copy)
    victim = sorted((copy / "clips").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-2] + b"\x00\x01")
    with FakePredictionServer(Behaviour()) as server:
        code = main(
            ["--url", server.url, "--holdout", str(copy / "dataset.csv"), "--baseline-url", server.url], dict
        )
    assert code == COULD_NOT_RUN and "does not match its sha256" in capsys.readouterr().out
