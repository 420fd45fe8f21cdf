from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.fakes.training import InMemoryStore
from training.artifacts import ArtifactCorrupt, find_output, stage_key, write_output
from training.cli import app
from training.presets import PRESETS, get_preset
from training.wiring import REQUIRED_SETTINGS, SettingsError, load_settings


def test_a_stage_key_changes_with_any_input_and_not_with_key_order():
    a = stage_key("train", {"x": 1, "y": [1, 2]})
    assert a == stage_key("train", {"y": [1, 2], "x": 1})
    assert a != stage_key("train", {"x": 2, "y": [1, 2]}) and a != stage_key(
        "evaluate", {"x": 1, "y": [1, 2]}
    )


def test_an_output_is_complete_only_once_its_manifest_is_written():
    store = InMemoryStore(fail_puts_after=1)
    with pytest.raises(Exception, match="down"):
        write_output(store, "s", "k", {}, {"a.bin": b"1", "b.bin": b"2"})
    assert find_output(store, "s", "k") is None
    store.fail_puts_after = None
    out = write_output(store, "s", "k", {"in": 1}, {"a.bin": b"1"}, {"n": 3})
    assert find_output(store, "s", "k").manifest == out.manifest and out.info == {"n": 3}


def test_a_stored_file_that_no_longer_matches_its_manifest_is_refused():
    store = InMemoryStore()
    write_output(store, "s", "k", {}, {"a.bin": b"original"})
    store.objects["s/k/a.bin"] = b"tampered"
    with pytest.raises(ArtifactCorrupt):
        find_output(store, "s", "k").read("a.bin")


def test_presets_include_spiras_exp3_5_and_a_fast_one():
    exp = get_preset("exp3.5")
    assert (exp.features.window_s, exp.features.step_s, exp.features.temporal_mode) == (4.0, 1.0, "window")
    assert (exp.noise.num_noise_control, exp.noise.num_noise_patient) == (3, 3)
    assert (exp.learning_rate, exp.weight_decay, exp.warmup_steps, exp.batch_files) == (1e-3, 0.01, 1000, 5)
    assert get_preset("fast").epochs < exp.epochs
    out = CliRunner().invoke(app, ["presets"])
    assert out.exit_code == 0 and set(json.loads(out.stdout)) == set(PRESETS)


def test_an_unknown_preset_is_refused_with_the_known_names(tmp_path):
    out = CliRunner().invoke(
        app,
        ["run", "--data", "d.csv", "--noise", "n.csv", "--preset", "nope", "--settings", str(tmp_path / "s")],
    )
    assert out.exit_code == 2 and "exp3.5" in out.output and "fast" in out.output


def test_settings_missing_a_key_are_refused_by_name(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"s3_endpoint": "http://x", "s3_access_key": "a"}))
    with pytest.raises(SettingsError, match="s3_secret_key, features_bucket, mlflow_tracking_uri"):
        load_settings(path)


def test_a_csv_with_missing_files_fails_the_command_with_one_clear_error(tmp_path):
    (tmp_path / "d.csv").write_text("file_path,class\nmissing.wav,0\nalso.wav,7\n")
    (tmp_path / "n.csv").write_text("file_path\n")
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({k: "http://127.0.0.1:9" for k in REQUIRED_SETTINGS}))
    out = CliRunner().invoke(
        app,
        [
            "features",
            "--data",
            str(tmp_path / "d.csv"),
            "--noise",
            str(tmp_path / "n.csv"),
            "--preset",
            "fast",
            "--settings",
            str(settings),
            "--no-progress",
        ],
    )
    assert out.exit_code == 2
    assert "missing file" in out.output and "unknown label" in out.output


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_s3_fails_with_a_message_naming_the_endpoint():
    from training.adapters.s3 import S3ArtifactStore
    from training.ports import ServiceUnavailable

    endpoint = f"http://127.0.0.1:{_closed_port()}"
    store = S3ArtifactStore(endpoint, "k", "s", "bucket")
    with pytest.raises(ServiceUnavailable, match=f"S3 at {endpoint}"):
        store.get("features/x/manifest.json")


def test_an_unreachable_mlflow_fails_fast_with_a_message_naming_the_server():
    from training.adapters.mlflow_registry import MlflowRegistry
    from training.ports import ServiceUnavailable

    uri = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ServiceUnavailable, match=f"MLflow at {uri} is not reachable"):
        MlflowRegistry(uri).check()


def test_a_skipped_publish_says_its_reason_dates_from_when_the_version_was_published(capsys):
    from training.cli import _print_publish
    from training.stages.common import StageResult

    decision = {
        "model_name": "spira-respiratory",
        "version": "3",
        "candidate": True,
        "reason": "no champion yet",
    }
    output = write_output(
        InMemoryStore(), "publish", "k", {}, {"publish.json": json.dumps(decision).encode()}
    )
    _print_publish(StageResult("publish", "k", skipped=False, output=output, seconds=1.0))
    fresh = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    _print_publish(StageResult("publish", "k", skipped=True, output=output, seconds=0.0))
    replayed = " ".join(capsys.readouterr().out.split())
    assert "version 3 (alias candidate set: no champion yet)" in fresh
    assert "version 3 (when it was published, alias candidate set: no champion yet)" in replayed
