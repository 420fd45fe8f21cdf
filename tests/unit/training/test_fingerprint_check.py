"""`spira pipeline fingerprint --check`: the scheduled workflow's first step. `unchanged` exactly when the last
stage's output for these data, noise, preset and code is complete in the store (a run would reuse every
stage); a labelled file added to the dataset makes it `changed`. Nothing is trained here: completeness is
a manifest in the store, written at the keys the pipeline computes."""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fakes.training import InMemoryStore
from tests.unit.training.conftest import TinyData, make_pipeline, write_dataset
from training import cli
from training.artifacts import write_output
from training.pipeline import STAGE_NAMES


def _complete_every_stage(data: TinyData, store: InMemoryStore) -> None:
    for name, entry in make_pipeline(data, store).fingerprint().items():
        write_output(store, name, entry["key"], {}, {"marker": b"done"})


def _check(monkeypatch: pytest.MonkeyPatch, data: TinyData, store: InMemoryStore, tmp_path: Path) -> str:
    monkeypatch.setattr(cli, "_settings_and_lease", lambda _: ({}, contextlib.nullcontext()))
    monkeypatch.setattr(cli, "_pipeline", lambda *a, **k: make_pipeline(data, store))
    result_file = tmp_path / "changed"
    args = ["fingerprint", "--data", str(data.dataset_csv), "--noise", str(data.noise_csv), "--check"]
    out = CliRunner().invoke(cli.app, [*args, "--result-file", str(result_file)])
    assert out.exit_code == 0, out.output
    assert out.stdout.strip() == result_file.read_text()
    return result_file.read_text()


def test_the_fingerprint_lists_every_stage_key_and_runs_nothing(tiny_data):
    store = InMemoryStore()
    stages = make_pipeline(tiny_data, store).fingerprint()
    assert list(stages) == list(STAGE_NAMES)
    assert not any(entry["complete"] for entry in stages.values()) and store.objects == {}


def test_the_check_says_changed_until_the_last_stage_is_complete_then_unchanged(
    tiny_data, monkeypatch, tmp_path
):
    store = InMemoryStore()
    assert _check(monkeypatch, tiny_data, store, tmp_path) == "changed"
    _complete_every_stage(tiny_data, store)
    assert _check(monkeypatch, tiny_data, store, tmp_path) == "unchanged"


def test_a_labelled_file_added_to_the_dataset_makes_the_check_say_changed(monkeypatch, tmp_path):
    data = write_dataset(tmp_path / "data")
    store = InMemoryStore()
    _complete_every_stage(data, store)
    assert _check(monkeypatch, data, store, tmp_path) == "unchanged"
    extra = write_dataset(tmp_path / "more", n_per_class=1, seed=5)
    (data.root / "clips" / "new.wav").write_bytes((extra.root / "clips" / "c000.wav").read_bytes())
    with open(data.dataset_csv, "a", newline="") as fh:
        csv.writer(fh).writerow(["clips/new.wav", 0, "x"])
    assert _check(monkeypatch, data, store, tmp_path) == "changed"
