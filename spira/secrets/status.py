"""One row per secret of an environment: path, current version, age, last rotation, rotation in progress."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from infra.vault import layout
from spira.secrets.rotation import FINISHED
from spira.secrets.store import SecretStore


@dataclass(frozen=True)
class SecretRow:
    path: str  # <mount>/<path>, as workloads name it
    version: int | None  # None: not seeded
    age_s: float | None  # since the current version was written
    last_rotated: str | None  # ISO time from the secret's custom metadata
    rotation: str | None  # state of an unfinished rotation ("published": rerun rotate to finish)


def secret_status(env: str, vault: SecretStore, now: datetime) -> list[SecretRow]:
    rows = []
    for service in layout.SERVICES:
        path = layout.secret_path(env, service)
        meta = vault.metadata(path)
        journal = vault.read(layout.rotation_journal_path(env, service))
        state = journal.data.get("state") if journal else None
        rows.append(
            SecretRow(
                path=layout.secret_ref(env, service),
                version=meta.current_version if meta else None,
                age_s=(now - meta.created_time).total_seconds() if meta else None,
                last_rotated=(meta.custom.get("last_rotated") if meta else None),
                rotation=None if state is None or state in FINISHED else str(state),
            )
        )
    return rows


def human_age(seconds: float | None) -> str:
    """Two units at most: 2d3h, 3h5m, 5m7s, 7s."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for i, (name, size) in enumerate(units[:-1]):
        if s >= size:
            sub_name, sub_size = units[i + 1]
            return f"{s // size}{name}{(s % size) // sub_size}{sub_name}"
    return f"{s}s"
