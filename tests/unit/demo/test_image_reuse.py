"""A demo rerun reuses a tested image only while nothing it is built from has changed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from spira.demo import reuse


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for name, text in {
        "serving/app.py": "app = 1\n",
        "spira_core/mfcc.py": "n = 40\n",
        "intake/app.py": "limit = 10\n",
        "docs/a.md": "# a\n",
        "requirements.lock": "torch==2.13.0\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
    return tmp_path


def test_the_key_changes_with_the_model_version_and_with_an_image_source(repo: Path) -> None:
    key = reuse.source_key(repo, "3")
    assert reuse.source_key(repo, "3") == key
    assert reuse.source_key(repo, "4") != key
    (repo / "spira_core/mfcc.py").write_text("n = 41\n")
    assert reuse.source_key(repo, "3") != key


def test_the_key_changes_with_the_sources_of_every_image_it_covers(repo: Path) -> None:
    key = reuse.source_key(repo, "3", ["model", "intake"])
    assert reuse.source_key(repo, "3", ["model"]) == reuse.source_key(repo, "3")
    (repo / "intake/app.py").write_text("limit = 11\n")
    assert reuse.source_key(repo, "3", ["model", "intake"]) != key
    assert {"intake/Containerfile", "intake", "training/Containerfile", "training"} <= set(
        reuse.built_from(["intake", "training"])
    )


def test_the_key_ignores_files_that_do_not_go_into_the_images(repo: Path) -> None:
    key = reuse.source_key(repo, "3")
    (repo / "docs/a.md").write_text("# b\n")
    (repo / "serving/scratch.py").write_text("untracked = True\n")
    assert reuse.source_key(repo, "3") == key


def _save_unreachable_images(record: Path, key: str) -> None:
    """A record of images on loopback port 1, where nothing listens (as after the registry was wiped)."""
    reuse.save(
        record,
        key,
        bento="spira:x",
        images={
            "model": "127.0.0.1:1/spira/model@sha256:" + "a" * 64,
            "loadtest": "127.0.0.1:1/spira/loadtest@sha256:" + "b" * 64,
        },
    )


def test_a_record_for_another_key_is_not_reused(tmp_path: Path) -> None:
    record = tmp_path / "images.json"
    _save_unreachable_images(record, "old")
    assert json.loads(record.read_text())["key"] == "old"
    assert reuse.reusable(record, "new", ["model"]) is None


def test_a_record_without_an_image_now_pinned_is_not_reused(tmp_path: Path) -> None:
    record = tmp_path / "images.json"
    _save_unreachable_images(record, "k")
    # checked before any registry lookup: the record names no intake image at all
    assert reuse.reusable(record, "k", ["model", "loadtest", "intake"]) is None
    # a record written before the demo recorded every pinned image (one `image`, one `loadtest_image`)
    record.write_text(json.dumps({"key": "k", "image": "r/spira/model@sha256:" + "a" * 64}))
    assert reuse.reusable(record, "k", ["model"]) is None


def test_a_record_whose_images_left_the_registry_is_not_reused(tmp_path: Path) -> None:
    record = tmp_path / "images.json"
    # port 1 on loopback: nothing listens, as after the registry's data was wiped
    _save_unreachable_images(record, "k")
    assert reuse.reusable(record, "k", ["model", "loadtest"]) is None
    assert reuse.reusable(tmp_path / "missing.json", "k", ["model"]) is None
