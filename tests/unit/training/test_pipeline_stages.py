"""The four stages on fakes: content addressing, resumption, byte-identical reruns, bad audio, publishing."""

from __future__ import annotations

import json

import pytest

from tests.fakes.training import FakeRegistry, InMemoryStore
from tests.unit.training.conftest import TINY, make_pipeline, write_dataset
from training.ports import ServiceUnavailable
from training.stages.common import StageNotReady
from training.stages.publish import MODEL_NAME


@pytest.fixture(scope="module")
def completed(tmp_path_factory):
    """One full run shared by the tests that only look at its outputs (training is the slow part)."""
    data = write_dataset(tmp_path_factory.mktemp("data"))
    store, registry = InMemoryStore(), FakeRegistry()
    results = make_pipeline(data, store, registry).run_all()
    return data, store, registry, results


def test_a_full_run_registers_a_version_with_alias_candidate_and_logs_the_run(completed):
    _, _, registry, results = completed
    assert [r.stage for r in results] == ["features", "train", "evaluate", "publish"]
    assert not any(r.skipped for r in results)
    decision = results[-1].output.read_json("publish.json")
    assert decision["version"] == "1" and decision["candidate"] is True
    assert "no champion" in decision["reason"]
    assert registry.aliases[(MODEL_NAME, "candidate")] == "1"
    version = registry.versions[MODEL_NAME][0]
    assert version.tags["candidate_reason"] == decision["reason"]
    assert "metric.f1_noisy" in version.tags

    record = registry.runs[decision["run_id"]]
    assert len(record.epoch_metrics) == 2 and {"train_loss", "val_loss", "lr"} <= set(record.epoch_metrics[0])
    for name in ("accuracy_clean", "f1_noisy", "sensitivity_noisy", "specificity_clean", "roc_auc_clean"):
        assert name in record.metrics
    assert record.tags["git_commit"] == "abc123"
    assert len(record.tags["dataset_fingerprint"]) == 64
    assert record.params["features.n_mfcc"] == "40" and record.params["preset.learning_rate"] == "0.001"
    assert record.artifacts["evaluation/confusion_noisy.png"].startswith(b"\x89PNG")
    assert registry.logged_model_files[decision["run_id"]] == [
        "bundle.json",
        "drift_reference.json",
        "feature_params.json",
        "weights.bin",
        "weights.json",
    ]


def test_the_trained_bundle_carries_the_drift_reference_of_its_training_frames(completed, tmp_path):
    from training.stages import features as features_stage
    from training.stages import train as train_stage

    features, trained = completed[3][0].output, completed[3][1].output
    bundle = train_stage.read_bundle(trained, tmp_path / "model")
    reference = bundle.drift_reference
    assert reference is not None and reference.coefficients == bundle.params.n_mfcc
    data = features_stage.read_feature_set(features.read("frames.npy"), features.read("index.json"))
    training_frames = [f.variant("clean") for f in data["train"]]
    assert reference.frames == sum(len(f) for f in training_frames)
    assert reference.score(sum(reference.counts(f) for f in training_frames)) < 1e-6


def test_a_rerun_skips_every_completed_stage(completed):
    data, store, registry, _ = completed
    writes = len(store.puts)
    again = make_pipeline(data, store, registry).run_all()
    assert all(r.skipped for r in again)
    assert len(store.puts) == writes and len(registry.runs) == 1


def test_two_runs_from_scratch_write_byte_identical_outputs(completed):
    data, first, _, _ = completed
    second = InMemoryStore()
    make_pipeline(data, second).run_all()
    assert set(second.objects) == set(first.objects)
    for key, data in first.objects.items():
        if key.startswith("publish/"):
            continue  # names the registry's run id
        assert second.objects[key] == data, key


def test_s3_failing_during_train_keeps_features_and_the_rerun_resumes_from_train(completed):
    data, done, _, _ = completed
    store = InMemoryStore()
    store.objects = {k: v for k, v in done.objects.items() if k.startswith("features/")}
    store.fail_puts_after = 1  # S3 goes down after train wrote its first file
    with pytest.raises(ServiceUnavailable, match="down"):
        make_pipeline(data, store).run_all()
    assert not any(k.startswith("train/") and k.endswith("manifest.json") for k in store.objects)
    store.fail_puts_after = None
    results = make_pipeline(data, store).run_all()
    assert [r.skipped for r in results] == [True, False, False, False]
    assert not any(k.startswith("features/") for k in store.puts)
    train_key = results[1].key
    for key in (k for k in done.objects if k.startswith(f"train/{train_key}/")):
        assert store.objects[key] == done.objects[key], key


def test_unreadable_audio_is_reported_and_excluded_without_stopping_the_run(tmp_path):
    data = write_dataset(
        tmp_path / "d",
        bad={"clips/empty.wav": b"", "clips/corrupt.wav": b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk"},
    )
    result = make_pipeline(data).run("features")
    report = result.output.read_json("report.json")
    assert report["files_listed"] == 14 and report["files_excluded"] == 2 and report["files_used"] == 12
    assert sorted(b["file"] for b in report["bad_files"]) == ["clips/corrupt.wav", "clips/empty.wav"]
    assert report["excluded_by_error"] == {"CorruptAudioError": 1, "EmptyAudioError": 1}
    index = json.loads(result.output.read("index.json"))
    assert not any(e["file"].endswith(("empty.wav", "corrupt.wav")) for e in index)


def test_features_hold_clean_and_noisy_variants_per_split(completed):
    result = completed[3][0]
    index = json.loads(result.output.read("index.json"))
    variants = {(e["split"], e["variant"]) for e in index}
    assert variants == {
        ("train", "clean"),
        ("train", "noise0"),
        ("train", "noise1"),
        ("val", "clean"),
        ("val", "noisy"),
        ("test", "clean"),
        ("test", "noisy"),
    }
    files = {s: {e["sha256"] for e in index if e["split"] == s} for s in ("train", "val", "test")}
    assert not (
        files["train"] & files["val"] or files["train"] & files["test"] or files["val"] & files["test"]
    )


def test_changing_a_training_parameter_keeps_the_features_and_retrains(completed):
    data, done, _, results = completed
    store = InMemoryStore()
    store.objects = dict(done.objects)
    other = make_pipeline(data, store, preset=TINY.with_overrides(epochs=1))
    assert other.key("features") == results[0].key
    assert other.key("train") != results[1].key
    assert other.run("features").skipped and not other.run("train").skipped


def test_changing_a_feature_parameter_changes_every_key(completed):
    data, _, _, results = completed
    other = make_pipeline(data, preset=TINY.with_overrides(features=TINY.features.__class__(window_s=1.0)))
    assert other.key("features") != results[0].key and other.key("train") != results[1].key


def test_a_stage_run_before_its_input_stage_says_which_to_run(tiny_data):
    pipeline = make_pipeline(tiny_data)
    with pytest.raises(StageNotReady, match="spira pipeline features"):
        pipeline.run("train")
