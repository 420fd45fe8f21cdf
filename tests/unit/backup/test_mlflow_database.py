"""MLflow's database is copied with SQLite's backup API: consistent while written, checked before restore."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from spira.backup.manifest import BackupRefused
from spira.backup.mlflow_db import COUNTED, SqliteMlflowDatabase, counts


def _quiet(_: str) -> None:
    pass


def _mlflow_like(path: Path, schema: str = "rev-1", versions: int = 2) -> None:
    """The tables the adapter counts, as MLflow's schema names them."""
    with closing(sqlite3.connect(path)) as db:
        for table in COUNTED.values():
            db.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("CREATE TABLE alembic_version (version_num TEXT)")
        db.execute("INSERT INTO alembic_version VALUES (?)", (schema,))
        db.executemany("INSERT INTO model_versions (name) VALUES (?)", [(f"v{i}",) for i in range(versions)])
        db.execute("INSERT INTO registered_model_aliases (name) VALUES ('champion')")
        db.commit()


def test_a_copy_taken_while_a_writer_holds_an_open_transaction_has_only_committed_rows(
    tmp_path: Path,
) -> None:
    live = tmp_path / "live" / "mlflow.db"
    live.parent.mkdir()
    _mlflow_like(live)
    writer = sqlite3.connect(live)
    writer.execute("INSERT INTO model_versions (name) VALUES ('uncommitted')")  # transaction left open
    dest = tmp_path / "backup"
    dest.mkdir()
    try:
        result = SqliteMlflowDatabase(live).take(dest, _quiet)
    finally:
        writer.rollback()
        writer.close()
    assert result.details["model_versions"] == 2 and result.details["aliases"] == 1
    assert counts(dest / "mlflow.db") == result.details
    assert (dest / "mlflow.db").stat().st_mode & 0o777 == 0o600


def test_restore_replaces_the_live_database_with_the_backup(tmp_path: Path) -> None:
    backup, live = tmp_path / "backup", tmp_path / "live.db"
    backup.mkdir()
    _mlflow_like(backup / "mlflow.db", versions=3)
    _mlflow_like(live, versions=0)  # what a stack brought up empty holds
    db = SqliteMlflowDatabase(live)
    taken = counts(backup / "mlflow.db")
    db.check(backup, taken)
    db.restore(backup, taken, _quiet)
    assert counts(live)["model_versions"] == 3


def test_a_backup_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mlflow.db").write_bytes(b"not a database, but the right size? no")
    with pytest.raises(BackupRefused, match="is not a readable MLflow database"):
        SqliteMlflowDatabase(tmp_path / "live.db").check(tmp_path, {})


def test_a_backup_of_another_schema_revision_than_the_server_is_refused(tmp_path: Path) -> None:
    backup, live = tmp_path / "backup", tmp_path / "live.db"
    backup.mkdir()
    _mlflow_like(backup / "mlflow.db", schema="rev-1")
    _mlflow_like(live, schema="rev-2")
    with pytest.raises(BackupRefused, match="schema rev-1 is not this server's rev-2"):
        SqliteMlflowDatabase(live).check(backup, counts(backup / "mlflow.db"))
