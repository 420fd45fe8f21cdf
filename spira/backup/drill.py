"""Take a backup and restore one, through the ports only (service layer: no service is named here).

Create: each part writes under a hidden folder beside DIR, the manifest (sizes and sha256 of every file)
is written last, and the folder is renamed to DIR: a DIR with a manifest is a complete backup.
Order: MLflow's database first, then the objects (so every artifact the database names was copied after
it was written), then Vault and the object store's identities close together.

Restore: the whole backup is verified (every hash), then each part checks it against this stack, all
before anything changes; then the readers that read credentials only at start (MLflow) stop, Vault, the
object store and MLflow's database are restored, in that order (credentials first, then what they open),
and the readers start again on the restored data.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from spira.backup import manifest as mf
from spira.backup.ports import (
    BackupPart,
    MlflowDatabase,
    ObjectStoreCopy,
    PartResult,
    Say,
    StackControl,
    VaultSnapshots,
)


@dataclass(frozen=True)
class BackupParts:
    vault: VaultSnapshots
    objectstore: ObjectStoreCopy
    mlflow: MlflowDatabase
    stack: StackControl

    def take_order(self) -> list[BackupPart]:
        return [self.mlflow, self.objectstore, self.vault]

    def restore_order(self) -> list[BackupPart]:
        return [self.vault, self.objectstore, self.mlflow]


@dataclass(frozen=True)
class Step:
    part: str
    result: PartResult
    seconds: float


def _utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def create(
    out: Path, parts: BackupParts, say: Say, now: Callable[[], str] = _utcnow
) -> tuple[mf.Manifest, list[Step]]:
    out = out.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise mf.BackupRefused(f"{out} exists and is not an empty directory; choose a new --out")
    parts.stack.ensure_running()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    try:
        created_at = now()
        steps = []
        for part in parts.take_order():
            started = time.monotonic()
            dest = work / part.name
            dest.mkdir(mode=0o700)
            result = part.take(dest, say)
            steps.append(Step(part.name, result, time.monotonic() - started))
        manifest = mf.write(
            work, created_at, parts.stack.describe(), {s.part: s.result.details for s in steps}
        )
        if out.exists():
            out.rmdir()
        work.rename(out)
        return manifest, steps
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def preflight(src: Path, parts: BackupParts, say: Say) -> mf.Manifest:
    """Everything that can refuse a restore, run before anything is changed."""
    say(f"verifying {src}")
    manifest = mf.verify(src)
    say(f"  {len(manifest.files)} files match the manifest of {manifest.created_at}")
    parts.stack.ensure_running()
    for part in parts.restore_order():
        part.check(src / part.name, manifest.parts[part.name])
    return manifest


def restore(src: Path, parts: BackupParts, say: Say) -> tuple[mf.Manifest, list[Step], list[str]]:
    src = src.resolve()
    manifest = preflight(src, parts, say)
    notes = []
    here = parts.stack.describe()
    moved = sorted(
        k for k in ("vault_addr", "s3_endpoint", "mlflow_uri") if manifest.stack.get(k) != here.get(k)
    )
    if moved:
        notes.append(
            f"the backup was taken from a stack at other addresses ({', '.join(moved)}); the restored "
            "secrets name those addresses"
        )
    steps = []
    parts.stack.stop_readers(say)
    try:
        for part in parts.restore_order():
            started = time.monotonic()
            result = part.restore(src / part.name, manifest.parts[part.name], say)
            steps.append(Step(part.name, result, time.monotonic() - started))
    except BaseException:
        try:  # bring the readers back, but let the part's own error be the one reported
            parts.stack.start_readers(say)
        except Exception as exc:
            say(f"could not start the readers again: {exc}")
        raise
    parts.stack.start_readers(say)
    return manifest, steps, notes
