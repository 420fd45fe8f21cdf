"""MLflow's SQLite backend copied with SQLite's online backup API: a consistent copy even while the server
writes (a file copy of a live database can catch a half-written transaction).

The auth app's user database (auth.db: users, password hashes, permissions) travels the same way, and its
admin credential (admin.json: the password and the CSRF key) as a file, so that the workloads' MLflow
passwords in the restored Vault still match. The artifacts (models, metrics files) are objects of the MLflow
bucket and travel with the object store.
The restore runs while MLflow is stopped (it reads its database and its S3 key at start) and copies the
backup into the live path with the same API, then checks the counts of what was taken.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from spira.backup.manifest import BackupFailed, BackupRefused
from spira.backup.ports import MlflowDatabase, PartResult, Say

DB = "mlflow.db"
AUTH_DB = "auth.db"
ADMIN = "admin.json"
COUNTED = {
    "experiments": "experiments",
    "runs": "runs",
    "registered_models": "registered_models",
    "model_versions": "model_versions",
    "aliases": "registered_model_aliases",
}


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)


def counts(path: Path) -> dict[str, Any]:
    """What the database holds, in numbers, and its schema revision."""
    with closing(_read_only(path)) as db:
        found: dict[str, Any] = {
            name: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for name, table in COUNTED.items()
        }
        found["schema"] = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    return found


def _users(path: Path) -> int:
    with closing(_read_only(path)) as db:
        return db.execute("SELECT count(*) FROM users").fetchone()[0]


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _copy(src: sqlite3.Connection, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(dest, timeout=30)) as target:
        src.backup(target)
    os.chmod(dest, 0o600)


class SqliteMlflowDatabase(MlflowDatabase):
    def __init__(
        self, db_path: Path, auth_db_path: Path | None = None, admin_path: Path | None = None
    ) -> None:
        self.db_path = db_path
        self.auth_db_path = auth_db_path
        self.admin_path = admin_path

    def _auth_files(self) -> list[tuple[Path, str]]:
        return [(p, name) for p, name in ((self.auth_db_path, AUTH_DB), (self.admin_path, ADMIN)) if p]

    def take(self, dest: Path, say: Say) -> PartResult:
        if not self.db_path.is_file():
            raise BackupFailed(f"mlflow: {self.db_path} does not exist")
        say("mlflow: copying the database (SQLite online backup)")
        with closing(_read_only(self.db_path)) as live:
            _copy(live, dest / DB)
        taken = counts(dest / DB)
        for live_path, name in self._auth_files():
            if not live_path.is_file():
                raise BackupFailed(f"mlflow: {live_path} does not exist (run `spira stack up` once)")
            say(f"mlflow: copying {name}")
            if name == AUTH_DB:
                with closing(_read_only(live_path)) as live:
                    _copy(live, dest / name)
                taken["users"] = _users(dest / name)
            else:
                _write_private(dest / name, live_path.read_bytes())
        return PartResult(self._what(taken), taken)

    def check(self, src: Path, taken: dict[str, Any]) -> None:
        try:
            with closing(_read_only(src / DB)) as db:
                verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
            theirs = counts(src / DB)
        except sqlite3.Error as exc:
            raise BackupRefused(f"{src / DB} is not a readable MLflow database ({exc})") from exc
        if verdict != "ok":
            raise BackupRefused(f"{src / DB} fails SQLite's integrity check: {verdict}")
        if "users" in taken and not (src / AUTH_DB).is_file():
            raise BackupRefused(f"{src / AUTH_DB} is missing: the backup took MLflow's users")
        if self.db_path.is_file():
            try:
                ours = counts(self.db_path)["schema"]
            except sqlite3.Error:
                ours = None  # an unreadable live database is what a restore replaces
            if ours is not None and ours != theirs["schema"]:
                raise BackupRefused(
                    f"the backup's MLflow schema {theirs['schema']} is not this server's {ours}: "
                    "restore with the MLflow version that took it, then `mlflow db upgrade`"
                )

    def restore(self, src: Path, taken: dict[str, Any], say: Say) -> PartResult:
        say("mlflow: restoring the database (SQLite online backup)")
        with closing(_read_only(src / DB)) as backup:
            _copy(backup, self.db_path)
        now = counts(self.db_path)
        for live_path, name in self._auth_files():
            if not (src / name).is_file():
                continue  # a backup taken before MLflow had authentication: keep the live users
            say(f"mlflow: restoring {name}")
            if name == AUTH_DB:
                with closing(_read_only(src / name)) as backup:
                    _copy(backup, live_path)
                now["users"] = _users(live_path)
            else:
                _write_private(live_path, (src / name).read_bytes())
        wrong = [k for k in (*COUNTED, "users") if now.get(k) != taken.get(k)]
        if wrong:
            raise BackupFailed(
                f"mlflow: after the restore {wrong[0]} is {now[wrong[0]]}, the backup took {taken.get(wrong[0])}"
            )
        return PartResult(self._what(now), now)

    @staticmethod
    def _what(c: dict[str, Any]) -> str:
        return (
            f"{c['experiments']} experiments, {c['runs']} runs, {c['registered_models']} models, "
            f"{c['model_versions']} versions, {c['aliases']} aliases"
        )
