"""Zero-downtime, resumable rotation of a service's S3 credential.

new key in the object store → new KV version (check-and-set on the version read) → wait until consumers
use it → revoke the old key → record the rotation (KV custom metadata).

Every step is written to a journal (`spira/<env>/_rotations/<service>`, a KV v2 secret of its own)
*before* the step acts, so an interruption anywhere leaves:
  - a working credential in the service's secret (the old key is revoked only after the new one is
    published and consumers use it), and
  - no key in the object store that the journal cannot account for (it lists the keys that existed
    before, and the new key's id as soon as it is known).
Running rotate again reads the journal first: a rotation interrupted before its new key was published is
cleaned up (the unpublished key deleted) and started afresh; one interrupted after is finished.
Journal writes are check-and-set too, so two operators rotating the same secret cannot both proceed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from infra.vault import layout
from spira.secrets.consumers import ConsumerWait
from spira.secrets.objectstore import ObjectStoreAdmin
from spira.secrets.seed import object_store_user
from spira.secrets.store import CasConflict, SecretsError, SecretStore, Versioned

# Which KV fields hold each rotatable credential.
ROTATABLE: dict[str, tuple[str, str]] = {"s3": ("s3_access_key", "s3_secret_key")}

STARTED, KEY_CREATED, PUBLISHED, REVOKING, DONE, ABANDONED = (
    "started",
    "key_created",
    "published",
    "revoking",
    "done",
    "abandoned",
)
FINISHED = {DONE, ABANDONED}

Clock = Callable[[], datetime]
StepHook = Callable[[str, dict[str, Any]], None]


class RotationConflict(SecretsError):
    pass


def utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


def _parse(s: str) -> datetime:
    return datetime.fromisoformat(s)


@dataclass(frozen=True)
class RotationResult:
    rotation_id: str
    service: str
    old_access_key: str
    new_access_key: str
    from_version: int
    to_version: int
    started_at: datetime
    published_at: datetime
    finished_at: datetime
    resumed: bool  # finished a rotation an earlier run had started
    cleaned_up: tuple[str, ...]  # unpublished keys of an interrupted earlier run, deleted


def check_rotatable(service: str, key: str) -> tuple[str, str]:
    if key not in ROTATABLE:
        raise SecretsError(f"unknown key {key!r}; rotatable keys: {', '.join(ROTATABLE)}")
    svc = layout.SERVICES.get(service)
    if svc is None:
        raise SecretsError(f"unknown service {service!r}; expected one of {', '.join(layout.SERVICES)}")
    fields = ROTATABLE[key]
    if not svc.workload or not set(fields) <= set(svc.keys):
        raise SecretsError(
            f"{service!r} has no {key} credential of its own to rotate "
            "(the object-store admin credential is rotated in the store: see docs/runbooks/vault.md)"
        )
    return fields


@dataclass
class Rotation:
    env: str
    service: str
    vault: SecretStore
    store: ObjectStoreAdmin
    waiter: ConsumerWait
    clock: Clock = utc_now
    on_step: StepHook = lambda _step, _journal: None
    key: str = "s3"

    def __post_init__(self) -> None:
        env, service = self.env, self.service
        self.access_field, self.secret_field = check_rotatable(service, self.key)
        self.path = layout.secret_path(env, service)
        self.ref = layout.secret_ref(env, service)
        self.journal_path = layout.rotation_journal_path(env, service)
        self.user = object_store_user(env, service)
        self.journal: dict[str, Any] = {}
        self.journal_version = 0

    # -- journal ---------------------------------------------------------------------------------
    def _load_journal(self) -> None:
        found = self.vault.read(self.journal_path)
        self.journal, self.journal_version = (dict(found.data), found.version) if found else ({}, 0)

    def _save(self, state: str, **changes: Any) -> None:
        record = {**self.journal, **changes, "state": state, "updated_at": _iso(self.clock())}
        try:
            self.journal_version = self.vault.write(self.journal_path, record, cas=self.journal_version)
        except CasConflict as exc:
            raise RotationConflict(
                f"another rotation of {self.ref} is running (its journal {layout.KV_MOUNT}/{self.journal_path} "
                "changed under this one); let it finish, then check `spira secrets status`"
            ) from exc
        self.journal = record

    def _step(self, name: str) -> None:
        self.on_step(name, dict(self.journal))

    # -- helpers ---------------------------------------------------------------------------------
    def _current(self) -> Versioned:
        cur = self.vault.read(self.path)
        if cur is None:
            raise SecretsError(f"{self.ref} does not exist; run `spira secrets seed --env {self.env}` first")
        if not cur.data.get(self.access_field):
            raise SecretsError(f"{self.ref} has no {self.access_field}; it is not a {self.key} credential")
        return cur

    def _cleanup_unpublished(self, current: Versioned) -> tuple[str, ...]:
        """Delete keys the interrupted run may have created: not there before it, and not in use."""
        before = set(self.journal.get("keys_before") or [])
        in_use = current.data[self.access_field]
        orphans = [k for k in self.store.list_keys(self.user) if k not in before and k != in_use]
        for k in orphans:
            self.store.delete_key(self.user, k)
        return tuple(orphans)

    # -- the rotation ----------------------------------------------------------------------------
    def run(self) -> RotationResult:
        self._load_journal()
        resumed = False
        cleaned: tuple[str, ...] = ()
        state = self.journal.get("state")
        if state in (STARTED, KEY_CREATED):
            current = self._current()
            new_key = self.journal.get("new_access_key")
            if (
                new_key
                and current.version > int(self.journal["from_version"])
                and current.data[self.access_field] == new_key
            ):
                # The new version landed but the run stopped before journaling it: wait from now.
                self._save(PUBLISHED, to_version=current.version, published_at=_iso(self.clock()))
                state, resumed = PUBLISHED, True
            else:
                cleaned = self._cleanup_unpublished(current)
                self._save(
                    ABANDONED,
                    finished_at=_iso(self.clock()),
                    note=f"interrupted before publishing; deleted unpublished keys: {list(cleaned)}",
                )
                self._step("cleaned_up")
                state = None
        elif state in (PUBLISHED, REVOKING):
            resumed = True
            self._step("resumed")

        if state not in (PUBLISHED, REVOKING):
            self._start_and_publish()
            state = PUBLISHED

        if state == PUBLISHED:
            self.waiter.wait(self.ref, int(self.journal["to_version"]), _parse(self.journal["published_at"]))
            self._step("consumers_ready")
            self._save(REVOKING)
            self._step("revoking")
        self._revoke_and_record()
        j = self.journal
        return RotationResult(
            rotation_id=j["rotation_id"],
            service=self.service,
            old_access_key=j["old_access_key"],
            new_access_key=j["new_access_key"],
            from_version=int(j["from_version"]),
            to_version=int(j["to_version"]),
            started_at=_parse(j["started_at"]),
            published_at=_parse(j["published_at"]),
            finished_at=_parse(j["finished_at"]),
            resumed=resumed,
            cleaned_up=cleaned,
        )

    def _start_and_publish(self) -> None:
        current = self._current()
        old_key = current.data[self.access_field]
        self.journal = {}
        self._save(
            STARTED,
            rotation_id=uuid.uuid4().hex,
            service=self.service,
            key=self.key,
            user=self.user,
            old_access_key=old_key,
            keys_before=self.store.list_keys(self.user),
            from_version=current.version,
            new_access_key="",
            to_version=0,
            started_at=_iso(self.clock()),
            published_at="",
            finished_at="",
            note="",
        )
        self._step(STARTED)
        new = self.store.create_key(self.user)
        self._save(KEY_CREATED, new_access_key=new.access_key)
        self._step(KEY_CREATED)
        data = {**current.data, self.access_field: new.access_key, self.secret_field: new.secret_key}
        try:
            version = self.vault.write(self.path, data, cas=current.version)
        except CasConflict as exc:
            self.store.delete_key(self.user, new.access_key)
            self._save(
                ABANDONED,
                finished_at=_iso(self.clock()),
                note=f"check-and-set conflict on version {current.version}; new key deleted",
            )
            raise RotationConflict(
                f"{self.ref} changed since version {current.version} was read (someone else rotated or "
                f"wrote it); rotation stopped: the new key was deleted, nothing was revoked. "
                f"Check `spira secrets status --env {self.env}` and rerun if still needed"
            ) from exc
        self._save(PUBLISHED, to_version=version, published_at=_iso(self.clock()))
        self._step(PUBLISHED)

    def _revoke_and_record(self) -> None:
        old_key = self.journal["old_access_key"]
        current = self._current()
        if current.data[self.access_field] == old_key:
            # Never revoke the credential Vault hands out: someone put the old key back after we published.
            raise SecretsError(
                f"refusing to revoke {old_key}: {self.ref} serves it again (version "
                f"{current.version}); investigate, then rerun"
            )
        if old_key in self.store.list_keys(self.user):
            self.store.delete_key(self.user, old_key)
        self._step("revoked")
        now = _iso(self.clock())
        meta = self.vault.metadata(self.path)
        custom = dict(meta.custom) if meta else {}
        custom.update(
            {
                "last_rotated": now,
                "last_rotated_key": self.key,
                "last_rotation_id": str(self.journal["rotation_id"]),
                "last_rotation_versions": f"{self.journal['from_version']}->{self.journal['to_version']}",
            }
        )
        self.vault.set_custom_metadata(self.path, custom)
        self._save(DONE, finished_at=now)
        self._step(DONE)


def rotate(*args: Any, **kwargs: Any) -> RotationResult:
    """Rotate (or resume rotating) one service's credential (Rotation's arguments); the in-process entry
    point for tests and the CLI."""
    return Rotation(*args, **kwargs).run()
