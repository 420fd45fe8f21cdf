"""Rotation as logic over the ports: order of steps, check-and-set, interruption anywhere, conflicts."""

from __future__ import annotations

import pytest

from infra.environments import declared
from infra.vault import layout
from spira.secrets.consumers import TtlWait
from spira.secrets.rotation import ABANDONED, DONE, PUBLISHED, RotationConflict, rotate
from spira.secrets.seed import EnvironmentEndpoints, object_store_user, service_values
from spira.secrets.store import SecretsError
from tests.fakes.secrets import (
    Crash,
    CrashingFakeAdmin,
    InMemorySecretStore,
    RecordingWait,
    WallClock,
    crash_at,
)

ENV, SERVICE = "staging", "serving"
PATH = layout.secret_path(ENV, SERVICE)
JOURNAL = layout.rotation_journal_path(ENV, SERVICE)
USER = object_store_user(ENV, SERVICE)
STEPS = ["started", "key_created", "published", "consumers_ready", "revoking", "revoked"]


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
def vault(clock: WallClock) -> InMemorySecretStore:
    return InMemorySecretStore(clock)


@pytest.fixture
def store(vault: InMemorySecretStore) -> CrashingFakeAdmin:
    """A seeded service: one user, one key, written to Vault as version 1."""
    admin = CrashingFakeAdmin()
    admin.ensure_user(USER, declared().object_store_grants(ENV, SERVICE))
    key = admin.create_key(USER)
    values = service_values(ENV, SERVICE, EnvironmentEndpoints("http://s3", "http://mlflow"))
    vault.write(PATH, {**values, "s3_access_key": key.access_key, "s3_secret_key": key.secret_key}, cas=0)
    admin.events.clear()
    return admin


def current(vault: InMemorySecretStore) -> dict:
    return vault.read(PATH).data


def assert_consistent(vault: InMemorySecretStore, store: CrashingFakeAdmin) -> None:
    """What must hold after any interruption: Vault's credential works, and every key in the store is
    Vault's, or named in the rotation journal, or (journal "started": created before its id could be
    written) claimed by the journal as "not in keys_before"."""
    data = current(vault)
    assert store.works(USER, data["s3_access_key"], data["s3_secret_key"]), "Vault hands out a dead key"
    journal = vault.read(JOURNAL).data if vault.read(JOURNAL) else {}
    accounted = {
        data["s3_access_key"],
        journal.get("old_access_key"),
        journal.get("new_access_key"),
        *(journal.get("keys_before") or []),
    }
    unaccounted = set(store.list_keys(USER)) - accounted
    assert not unaccounted or journal.get("state") == "started", "a key exists that nothing records"
    assert len(unaccounted) <= 1


def test_a_rotation_replaces_the_key_in_vault_and_revokes_the_old_one(vault, store, clock) -> None:
    old = current(vault)
    result = rotate(ENV, SERVICE, vault, store, RecordingWait(), clock=clock)
    new = current(vault)
    assert new["s3_access_key"] != old["s3_access_key"] and new["s3_secret_key"] != old["s3_secret_key"]
    assert {k: v for k, v in new.items() if not k.startswith("s3_") or k == "s3_endpoint"} == {
        k: v for k, v in old.items() if not k.startswith("s3_") or k == "s3_endpoint"
    }, "other fields changed"
    assert store.list_keys(USER) == [new["s3_access_key"]]
    assert (result.from_version, result.to_version) == (1, 2)
    assert result.old_access_key == old["s3_access_key"] and not result.resumed


def test_the_new_version_is_written_with_check_and_set_on_the_version_read(vault, store, clock) -> None:
    rotate(ENV, SERVICE, vault, store, RecordingWait(), clock=clock)
    assert (PATH, 1) in vault.writes


def test_the_old_key_is_revoked_only_after_consumers_use_the_new_version(vault, store, clock) -> None:
    seen_at_wait: list[list[str]] = []
    wait = RecordingWait(then=lambda: seen_at_wait.append(store.list_keys(USER)))
    old = current(vault)["s3_access_key"]
    rotate(ENV, SERVICE, vault, store, wait, clock=clock)
    assert wait.calls == [(layout.secret_ref(ENV, SERVICE), 2, clock.now)]
    assert old in seen_at_wait[0] and len(seen_at_wait[0]) == 2, "both keys must work while consumers switch"
    assert [e[0] for e in store.events] == ["create", "delete"]


def test_the_rotation_is_recorded_in_metadata_and_the_journal(vault, store, clock) -> None:
    result = rotate(ENV, SERVICE, vault, store, RecordingWait(), clock=clock)
    meta = vault.metadata(PATH)
    assert meta.custom["last_rotated"] == clock.now.isoformat(timespec="milliseconds")
    assert meta.custom["last_rotation_id"] == result.rotation_id
    assert meta.custom["last_rotation_versions"] == "1->2"
    journal = vault.read(JOURNAL).data
    assert journal["state"] == DONE and journal["new_access_key"] == result.new_access_key


@pytest.mark.parametrize("step", STEPS)
def test_an_interrupted_rotation_leaves_a_working_key_and_a_rerun_finishes_cleanly(
    vault, store, clock, step
) -> None:
    old = current(vault)["s3_access_key"]
    with pytest.raises(Crash):
        rotate(ENV, SERVICE, vault, store, RecordingWait(), clock=clock, on_step=crash_at(step))
    assert_consistent(vault, store)

    result = rotate(ENV, SERVICE, vault, store, RecordingWait(), clock=clock)
    assert_consistent(vault, store)
    assert store.list_keys(USER) == [current(vault)["s3_access_key"]], "old or orphan keys survived"
    assert old not in store.list_keys(USER)
    assert vault.read(JOURNAL).data["state"] == DONE
    before_publish = step in ("started", "key_created")
    assert result.resumed is not before_publish
    if before_publish:
        assert len(result.cleaned_up) == (1 if step == "key_created" else 0)


def test_a_crash_inside_key_creation_leaves_no_unrecorded_key_after_the_rerun(vault, store, clock) -> None:
    store.crash_after_create = True  # the key exists in the store; its id never reached the journal
    with pytest.raises(Crash):
        rotate(ENV, SERVICE, vault, store, RecordingWait(), clock=clock)
    assert len(store.list_keys(USER)) == 2 and vault.read(JOURNAL).data["new_access_key"] == ""
    assert_consistent(vault, store)
    result = rotate(ENV, SERVICE, vault, store, RecordingWait(), clock=clock)
    assert len(result.cleaned_up) == 1
    assert store.list_keys(USER) == [current(vault)["s3_access_key"]]


def test_a_crash_while_revoking_is_finished_by_the_rerun(vault, store, clock) -> None:
    old = current(vault)["s3_access_key"]
    store.crash_before_delete = True
    with pytest.raises(Crash):
        rotate(ENV, SERVICE, vault, store, RecordingWait(), clock=clock)
    assert vault.read(JOURNAL).data["state"] == "revoking"
    wait = RecordingWait()
    result = rotate(ENV, SERVICE, vault, store, wait, clock=clock)
    assert result.resumed and wait.calls == [], "consumers were already waited for"
    assert old not in store.list_keys(USER)


def test_a_write_that_landed_without_its_journal_entry_is_recognised_not_undone(vault, store, clock) -> None:
    # Die right after Vault accepted the new version, before the journal says "published".
    real_write = vault.write

    def write_then_die(path, data, cas):
        version = real_write(path, data, cas)
        if path == PATH:
            raise Crash("died after the KV write")
        return version

    vault.write = write_then_die
    with pytest.raises(Crash):
        rotate(ENV, SERVICE, vault, store, RecordingWait(), clock=clock)
    vault.write = real_write
    published = current(vault)["s3_access_key"]
    result = rotate(ENV, SERVICE, vault, store, RecordingWait(), clock=clock)
    assert result.resumed and result.new_access_key == published == current(vault)["s3_access_key"]
    assert store.list_keys(USER) == [published]


def test_a_resumed_rotation_waits_only_what_is_left_of_the_ttl(vault, store, clock) -> None:
    slept: list[float] = []
    with pytest.raises(Crash):
        rotate(
            ENV,
            SERVICE,
            vault,
            store,
            TtlWait(30, 10, clock, sleep=slept.append),
            clock=clock,
            on_step=crash_at("published"),
        )
    clock.advance(25)
    rotate(ENV, SERVICE, vault, store, TtlWait(30, 10, clock, sleep=slept.append), clock=clock)
    assert slept == [15.0]


def test_a_check_and_set_conflict_stops_deletes_the_new_key_and_revokes_nothing(vault, store, clock) -> None:
    old = current(vault)
    vault.before_write = lambda path: (
        path == PATH and vault.versions[PATH].append(({**old, "archive_bucket": "someone-else"}, clock.now))
    )
    with pytest.raises(RotationConflict, match=r"changed since version 1 was read.*nothing was revoked"):
        rotate(ENV, SERVICE, vault, store, RecordingWait(), clock=clock)
    assert store.list_keys(USER) == [old["s3_access_key"]], "the new key must not be left behind"
    assert current(vault)["archive_bucket"] == "someone-else", "the other writer's version stands"
    assert vault.read(JOURNAL).data["state"] == ABANDONED
    vault.before_write = lambda _path: None
    rotate(ENV, SERVICE, vault, store, RecordingWait(), clock=clock)
    assert current(vault)["archive_bucket"] == "someone-else"


def test_two_rotations_of_one_secret_cannot_both_proceed(vault, store, clock) -> None:
    def second_operator(step: str, _journal: dict) -> None:
        if step == "key_created":
            vault.versions[JOURNAL].append(({"state": "started", "note": "another operator"}, clock.now))

    with pytest.raises(RotationConflict, match="another rotation"):
        rotate(ENV, SERVICE, vault, store, RecordingWait(), clock=clock, on_step=second_operator)


def test_a_key_vault_serves_again_is_never_revoked(vault, store, clock) -> None:
    old = current(vault)

    def roll_back(step: str, _journal: dict) -> None:
        if step == PUBLISHED:
            vault.versions[PATH].append((old, clock.now))

    with pytest.raises(SecretsError, match="refusing to revoke"):
        rotate(ENV, SERVICE, vault, store, RecordingWait(), clock=clock, on_step=roll_back)
    assert old["s3_access_key"] in store.list_keys(USER)


def test_an_unseeded_secret_asks_for_seed(clock) -> None:
    with pytest.raises(SecretsError, match="spira secrets seed --env staging"):
        rotate(ENV, SERVICE, InMemorySecretStore(clock), CrashingFakeAdmin(), RecordingWait(), clock=clock)


@pytest.mark.parametrize(
    "service,key,message",
    [
        ("objectstore", "s3", "no s3 credential of its own"),
        ("serving", "mlflow", "unknown key"),
        ("frontend", "s3", "unknown service"),
    ],
)
def test_only_a_services_own_s3_credential_can_be_rotated(vault, store, service, key, message) -> None:
    with pytest.raises(SecretsError, match=message):
        rotate(ENV, service, vault, store, RecordingWait(), key=key)


def test_a_sealed_vault_stops_the_rotation_before_any_key_is_created(vault, store, clock) -> None:
    vault.sealed = True
    with pytest.raises(SecretsError, match="sealed"):
        rotate(ENV, SERVICE, vault, store, RecordingWait(), clock=clock)
    assert store.events == []
