"""The frozen holdout on the training side: freeze, store, exclusion from training, and publish's gate."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from spira_core.clinical.holdout import CLEAN, HOSPITAL_NOISE, HoldoutError
from spira_core.clinical.source import open_holdout
from tests.fakes.training import FakeRegistry, InMemoryStore
from tests.unit.training.conftest import make_pipeline, write_dataset
from training import holdout as training_holdout
from training.stages.publish import CANDIDATE, CHAMPION, MODEL_NAME


def _subset_csv(data, rows: slice, folder):
    """A dataset CSV of some of `data`'s recordings, copied elsewhere under other names."""
    folder.mkdir(parents=True)
    with open(data.dataset_csv) as fh:
        picked = list(csv.DictReader(fh))[rows]
    with open(folder / "dataset.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file_path", "class", "site"])
        for i, row in enumerate(picked):
            shutil.copy(data.root / row["file_path"], folder / f"renamed{i}.wav")
            w.writerow([f"renamed{i}.wav", row["class"], "hospital-a" if i % 2 else "hospital-b"])
    return folder / "dataset.csv"


def test_freeze_keeps_each_recording_and_adds_a_hospital_noise_copy_in_its_own_rate_and_channels(tmp_path):
    data = write_dataset(tmp_path / "data")
    frozen = training_holdout.freeze(data.dataset_csv, data.noise_csv)
    items = frozen.holdout.items
    assert len(items) == 2 * 12
    assert {i.condition["noise"] for i in items} == {CLEAN, HOSPITAL_NOISE}
    assert {i.condition["sample_rate"] for i in items} == {"48000", "16000"}
    assert {i.condition["channels"] for i in items} == {"1", "2"}
    again = training_holdout.freeze(data.dataset_csv, data.noise_csv)
    assert again.holdout.sha256 == frozen.holdout.sha256 and again.files == frozen.files


def test_an_uploaded_holdout_becomes_current_and_reads_back_checked_against_its_hashes(tmp_path):
    data = write_dataset(tmp_path / "data")
    store = InMemoryStore()
    frozen = training_holdout.freeze(_subset_csv(data, slice(0, 6), tmp_path / "h"))
    version = training_holdout.upload(frozen, store)
    opened = training_holdout.from_store(store)
    assert opened.holdout == frozen.holdout and version == frozen.holdout.version
    assert {i.condition["site"] for i in opened.holdout.items} == {"hospital-a", "hospital-b"}
    item = opened.holdout.items[0]
    store.put(f"{version}/{item.file_path}", b"RIFF tampered")
    with pytest.raises(HoldoutError, match="does not match its sha256"):
        opened.audio(item)
    assert training_holdout.from_store(InMemoryStore()) is None


def test_a_holdout_of_other_recordings_leaves_the_features_key_unchanged(tmp_path):
    data = write_dataset(tmp_path / "data")
    other = write_dataset(tmp_path / "other", seed=3)
    folder = training_holdout.write_folder(training_holdout.freeze(other.dataset_csv), tmp_path / "frozen")
    plain, judged = make_pipeline(data), make_pipeline(data)
    judged.data = type(judged.data).load(data.dataset_csv, data.noise_csv, open_holdout(folder))
    assert judged.data.excluded == ()
    assert judged.key("features") == plain.key("features")
    assert judged.key("publish") != plain.key("publish")


def test_the_training_splits_never_contain_a_holdout_recording_even_under_another_name(tmp_path):
    data = write_dataset(tmp_path / "data")
    folder = training_holdout.write_folder(
        training_holdout.freeze(_subset_csv(data, slice(0, 4), tmp_path / "h")), tmp_path / "frozen"
    )
    opened = open_holdout(folder)
    pipeline = make_pipeline(data)
    pipeline.data = type(pipeline.data).load(data.dataset_csv, data.noise_csv, opened)
    features = pipeline.run("features").output
    report = features.read_json("report.json")
    used = {entry["sha256"] for entry in json.loads(features.read("index.json"))}
    assert used and not used & {i.sha256 for i in opened.holdout.items}
    assert len(report["holdout_excluded"]) == 4 and len(pipeline.data.excluded) == 4
    assert report["files_used"] == 12 - 4


def test_publish_scores_the_new_version_and_the_champion_on_the_holdout_and_records_both(tmp_path):
    data = write_dataset(tmp_path / "data")
    opened = open_holdout(
        training_holdout.write_folder(training_holdout.freeze(data.dataset_csv), tmp_path / "frozen")
    )
    holdout_data = write_dataset(tmp_path / "train", seed=5)  # other recordings to train on
    store, registry = InMemoryStore(), FakeRegistry()
    pipeline = make_pipeline(holdout_data, store, registry)
    pipeline.data = type(pipeline.data).load(holdout_data.dataset_csv, holdout_data.noise_csv, opened)
    first = pipeline.run_all()[-1].output
    decision = first.read_json("publish.json")
    verdict = first.read_json("verdict.json")
    assert decision["holdout_version"] == verdict["holdout"]["version"] == opened.holdout.version
    assert verdict["baseline"] is None and decision["candidate"] is (verdict["verdict"] == "PASS")
    record = registry.runs[decision["run_id"]]
    scores = json.loads(record.artifacts["clinical/scores.json"])
    assert scores["holdout"]["sha256"] == opened.holdout.sha256 and len(scores["probabilities"]) == 12

    registry.set_alias(MODEL_NAME, CHAMPION, decision["version"])
    registry.aliases.pop((MODEL_NAME, CANDIDATE), None)
    pipeline.preset = pipeline.preset.with_overrides(seed=8)  # another model: train and publish again
    second = pipeline.run_all()[-1].output.read_json("verdict.json")
    assert second["baseline"]["model_version"] == decision["version"]
    assert second["baseline"]["source"] == "in-process"
    champion_scores = next(row for row in second["strata"] if row["stratum"] == "overall")
    assert (
        champion_scores["metrics"]["auc"]["baseline"]["value"]
        == verdict["strata"][0]["metrics"]["auc"]["candidate"]["value"]
    )
