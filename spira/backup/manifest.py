"""A backup's manifest: what was taken, when, from which stack, and the size and sha256 of every file.

`verify(dir)` reads nothing but the backup: it checks every file the manifest lists before a restore
touches any service, and refuses a partial or corrupt backup with one line (`BackupRefused`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

FORMAT = "spira-backup/1"
MANIFEST = "manifest.json"
PARTS = ("vault", "objectstore", "mlflow")  # every backup holds all three; restore needs all three
CHUNK = 1 << 20


class BackupRefused(RuntimeError):
    """A backup that must not be restored (or cannot be taken here), said in one line; nothing changed."""


class BackupFailed(RuntimeError):
    """A service answered wrongly while a backup was taken or restored, said in one line."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (keys, snapshots, patient data), replacing it atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Manifest:
    created_at: str
    stack: dict[str, Any]
    parts: dict[str, dict[str, Any]]  # part -> what it took (counts, inventories)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # relative path -> size, sha256

    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "created_at": self.created_at,
            "stack": self.stack,
            "parts": self.parts,
            "files": self.files,
        }
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def inventory(root: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file under root, by its path relative to root (POSIX separators)."""
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel != MANIFEST:
            files[rel] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    return files


def write(root: Path, created_at: str, stack: dict[str, Any], parts: dict[str, dict[str, Any]]) -> Manifest:
    manifest = Manifest(created_at=created_at, stack=stack, parts=parts, files=inventory(root))
    write_private(root / MANIFEST, manifest.to_json().encode())
    return manifest


def _safe(rel: str) -> bool:
    p = PurePosixPath(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts and "\\" not in rel


def load(root: Path) -> Manifest:
    """The manifest as written, or BackupRefused naming what is wrong with it (no file is hashed here)."""
    if not root.is_dir():
        raise BackupRefused(f"{root} is not a directory")
    path = root / MANIFEST
    if not path.is_file():
        raise BackupRefused(f"{root} has no {MANIFEST}: not a complete backup")
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != FORMAT:
            raise BackupRefused(f"{path} is format {doc.get('format')!r}, this spira reads {FORMAT!r}")
        manifest = Manifest(
            created_at=str(doc["created_at"]),
            stack=dict(doc["stack"]),
            parts={k: dict(v) for k, v in doc["parts"].items()},
            files={k: {"size": int(v["size"]), "sha256": str(v["sha256"])} for k, v in doc["files"].items()},
        )
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BackupRefused(f"{path} is unreadable ({type(exc).__name__}: {exc})") from exc
    missing = [p for p in PARTS if p not in manifest.parts]
    if missing:
        raise BackupRefused(f"{path} lists no {', '.join(missing)}: a partial backup")
    unsafe = [rel for rel in manifest.files if not _safe(rel)]
    if unsafe:
        raise BackupRefused(f"{path} names a file outside the backup: {unsafe[0]!r}")
    return manifest


def verify(root: Path) -> Manifest:
    """Check every listed file's presence, size and sha256; the first mismatch refuses the backup."""
    manifest = load(root)
    for rel, expected in sorted(manifest.files.items()):
        path = root / rel
        if not path.is_file():
            raise BackupRefused(f"{root}: {rel} is listed in the manifest but missing")
        size = path.stat().st_size
        if size != expected["size"]:
            raise BackupRefused(f"{root}: {rel} has {size} bytes, the manifest says {expected['size']}")
        digest = sha256_file(path)
        if digest != expected["sha256"]:
            raise BackupRefused(
                f"{root}: {rel} has sha256 {digest[:12]}…, the manifest says {expected['sha256'][:12]}…"
            )
    return manifest
