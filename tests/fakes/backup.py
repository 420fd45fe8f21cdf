"""Fakes for the backup ports: each writes a small file when it takes, and records every call in a shared
journal, so a test can see what a restore touched and in which order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spira.backup.drill import BackupParts
from spira.backup.manifest import BackupRefused
from spira.backup.ports import MlflowDatabase, ObjectStoreCopy, PartResult, Say, StackControl, VaultSnapshots


class _Recording:
    """take/check/restore for a fake part; `refuse` makes its check refuse the backup, `breaks` makes its
    restore raise (a service answering wrongly half-way)."""

    name: str

    def __init__(self, journal: list[str], files: dict[str, bytes]) -> None:
        self.journal = journal
        self.files = files
        self.refuse: str | None = None
        self.breaks: Exception | None = None

    def take(self, dest: Path, say: Say) -> PartResult:
        for rel, data in self.files.items():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(data)
        self.journal.append(f"take {self.name}")
        return PartResult(f"{len(self.files)} files", {"files": sorted(self.files)})

    def check(self, src: Path, taken: dict[str, Any]) -> None:
        self.journal.append(f"check {self.name}")
        if self.refuse:
            raise BackupRefused(self.refuse)

    def restore(self, src: Path, taken: dict[str, Any], say: Say) -> PartResult:
        self.journal.append(f"restore {self.name}")
        if self.breaks is not None:
            raise self.breaks
        return PartResult("restored", {"bytes": {rel: (src / rel).read_bytes() for rel in taken["files"]}})


class FakeVaultSnapshots(_Recording, VaultSnapshots):
    pass


class FakeObjectStoreCopy(_Recording, ObjectStoreCopy):
    pass


class FakeMlflowDatabase(_Recording, MlflowDatabase):
    pass


class FakeStackControl(StackControl):
    def __init__(self, journal: list[str], running: bool = True) -> None:
        self.journal = journal
        self.running = running

    def describe(self) -> dict[str, Any]:
        return {
            "home": "/fake",
            "vault_addr": "https://v",
            "s3_endpoint": "http://s3",
            "mlflow_uri": "http://m",
        }

    def ensure_running(self) -> None:
        if not self.running:
            raise BackupRefused("openbao of the stack in /fake is stopped: run `spira stack up`")

    def stop_readers(self, say: Say) -> None:
        self.journal.append("stop readers")

    def start_readers(self, say: Say) -> None:
        self.journal.append("start readers")


def fake_parts(journal: list[str]) -> BackupParts:
    return BackupParts(
        vault=FakeVaultSnapshots(
            journal, {"raft.snap": b"snapshot bytes", "keys.json": b'{"root_token": "r"}'}
        ),
        objectstore=FakeObjectStoreCopy(journal, {"objects.json": b"{}", "blobs/ab12": b"patient audio"}),
        mlflow=FakeMlflowDatabase(journal, {"mlflow.db": b"SQLite format 3\x00"}),
        stack=FakeStackControl(journal),
    )
