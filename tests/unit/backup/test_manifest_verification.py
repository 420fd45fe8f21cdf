"""A restore verifies every file of the backup against its manifest before it touches anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spira.backup import drill
from spira.backup.manifest import BackupFailed, BackupRefused, sha256_file
from spira.cli import main
from tests.fakes.backup import fake_parts


def _quiet(_: str) -> None:
    pass


@pytest.fixture
def backup(tmp_path: Path) -> Path:
    out = tmp_path / "backup"
    drill.create(out, fake_parts([]), say=_quiet)
    return out


def _refused(backup: Path, match: str) -> list[str]:
    journal: list[str] = []
    with pytest.raises(BackupRefused, match=match):
        drill.restore(backup, fake_parts(journal), say=_quiet)
    return journal


def test_a_backup_lists_every_file_with_its_size_and_sha256(backup: Path) -> None:
    manifest = json.loads((backup / "manifest.json").read_text())
    assert set(manifest["files"]) == {
        "vault/raft.snap",
        "vault/keys.json",
        "objectstore/objects.json",
        "objectstore/blobs/ab12",
        "mlflow/mlflow.db",
    }
    for rel, entry in manifest["files"].items():
        assert entry == {"size": (backup / rel).stat().st_size, "sha256": sha256_file(backup / rel)}
    assert set(manifest["parts"]) == {"vault", "objectstore", "mlflow"}
    assert manifest["stack"]["vault_addr"] == "https://v"


def test_an_intact_backup_is_checked_whole_then_restored_credentials_first_between_stopping_and_starting_readers(
    backup: Path,
) -> None:
    journal: list[str] = []
    _, steps, notes = drill.restore(backup, fake_parts(journal), say=_quiet)
    assert journal == [
        "check vault",
        "check objectstore",
        "check mlflow",
        "stop readers",
        "restore vault",
        "restore objectstore",
        "restore mlflow",
        "start readers",
    ]
    assert steps[1].result.details["bytes"]["blobs/ab12"] == b"patient audio"
    assert notes == []


def test_a_corrupted_file_of_the_same_size_is_refused_and_nothing_is_restored(backup: Path) -> None:
    blob = backup / "objectstore" / "blobs" / "ab12"
    blob.write_bytes(b"patient audiO")
    assert _refused(backup, r"objectstore/blobs/ab12 has sha256 .* the manifest says") == []


def test_a_missing_file_is_refused_and_nothing_is_restored(backup: Path) -> None:
    (backup / "vault" / "raft.snap").unlink()
    assert _refused(backup, "vault/raft.snap is listed in the manifest but missing") == []


def test_a_truncated_file_is_refused_by_its_size(backup: Path) -> None:
    (backup / "mlflow" / "mlflow.db").write_bytes(b"SQLite")
    assert _refused(backup, "mlflow/mlflow.db has 6 bytes, the manifest says 16") == []


def test_a_backup_without_its_manifest_is_refused_as_incomplete(backup: Path) -> None:
    (backup / "manifest.json").unlink()
    assert _refused(backup, "has no manifest.json: not a complete backup") == []


def test_an_unreadable_manifest_is_refused(backup: Path) -> None:
    (backup / "manifest.json").write_text('{"format": "spira-backup/1", "files": ')
    assert _refused(backup, "manifest.json is unreadable") == []


def test_a_manifest_without_one_of_the_three_parts_is_refused_as_partial(backup: Path) -> None:
    doc = json.loads((backup / "manifest.json").read_text())
    del doc["parts"]["mlflow"]
    (backup / "manifest.json").write_text(json.dumps(doc))
    assert _refused(backup, "lists no mlflow: a partial backup") == []


def test_a_manifest_naming_a_file_outside_the_backup_is_refused(backup: Path) -> None:
    doc = json.loads((backup / "manifest.json").read_text())
    doc["files"]["../../etc/passwd"] = {"size": 1, "sha256": "0" * 64}
    (backup / "manifest.json").write_text(json.dumps(doc))
    assert _refused(backup, "names a file outside the backup") == []


def test_a_part_that_refuses_stops_the_restore_before_any_service_is_stopped(backup: Path) -> None:
    journal: list[str] = []
    parts = fake_parts(journal)
    parts.objectstore.refuse = "the backup's object-store admin key K is not this stack's"
    with pytest.raises(BackupRefused, match="admin key"):
        drill.restore(backup, parts, say=_quiet)
    assert journal == ["check vault", "check objectstore"]


def test_a_part_that_fails_half_way_still_starts_the_readers_and_its_own_error_is_reported(
    backup: Path,
) -> None:
    journal: list[str] = []
    parts = fake_parts(journal)
    parts.objectstore.breaks = BackupFailed("objectstore: access key K is still unknown after 60s")
    with pytest.raises(BackupFailed, match="access key K"):
        drill.restore(backup, parts, say=_quiet)
    assert journal[-3:] == ["restore vault", "restore objectstore", "start readers"]


def test_a_stack_that_is_not_running_is_refused_before_anything_is_restored(backup: Path) -> None:
    journal: list[str] = []
    parts = fake_parts(journal)
    parts.stack.running = False
    with pytest.raises(BackupRefused, match="run `spira stack up`"):
        drill.restore(backup, parts, say=_quiet)
    assert journal == []


def test_create_refuses_a_directory_that_already_holds_files(backup: Path) -> None:
    journal: list[str] = []
    with pytest.raises(BackupRefused, match="not an empty directory"):
        drill.create(backup, fake_parts(journal), say=_quiet)
    assert journal == []


def test_a_create_that_fails_part_way_leaves_no_backup_directory_behind(tmp_path: Path) -> None:
    journal: list[str] = []
    parts = fake_parts(journal)
    parts.vault.files = {"/dev/null/cannot": b"x"}  # the last part taken fails to write
    with pytest.raises(OSError):
        drill.create(tmp_path / "backup", parts, say=_quiet)
    assert journal == ["take mlflow", "take objectstore"]
    assert list(tmp_path.iterdir()) == []


def test_spira_backup_restore_of_a_corrupt_backup_is_one_error_line_and_exit_1(
    backup: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SPIRA_HOME", str(tmp_path / "no-stack-here"))
    (backup / "vault" / "keys.json").write_text('{"root_token": "X"}')
    with pytest.raises(SystemExit) as exit_:
        main(["backup", "restore", str(backup)])
    assert exit_.value.code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "vault/keys.json has" in errors[0] and errors[0].endswith("nothing was restored")
    assert not (tmp_path / "no-stack-here").exists()  # the stack's home was never touched
