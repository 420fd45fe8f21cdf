"""Seeding leaves no key behind when Vault refuses the write; status reads versions, ages, rotations."""

from __future__ import annotations

import pytest

from infra.environments import declared
from infra.vault import layout
from spira.secrets.mlflow_users import seed_mlflow_users
from spira.secrets.rotation import rotate
from spira.secrets.seed import EnvironmentEndpoints, object_store_user, seed
from spira.secrets.status import human_age, secret_status
from tests.fakes.secrets import (
    Crash,
    CrashingFakeAdmin,
    FakeMlflowUsers,
    FakeObjectStoreAdmin,
    HvacKvOver,
    InMemorySecretStore,
    RecordingWait,
    WallClock,
    crash_at,
)

ENDPOINTS = EnvironmentEndpoints("http://s3:9000", "http://mlflow:5000")


def test_seed_creates_each_workloads_secret_once_and_then_keeps_it() -> None:
    vault, store = InMemorySecretStore(), FakeObjectStoreAdmin()
    workloads = ("serving", "training", "mlflow", "intake", "worker", "vault-backup", "archive-purge", "gate")
    assert seed("staging", HvacKvOver(vault), store, ENDPOINTS) == dict.fromkeys(workloads, "created")
    assert seed("staging", HvacKvOver(vault), store, ENDPOINTS) == dict.fromkeys(workloads, "kept")
    for service in workloads:
        data = vault.read(layout.secret_path("staging", service)).data
        settings = set(declared().serving_settings("staging")) if service == "serving" else set()
        later = set(layout.MLFLOW_USER_KEYS) | set(layout.DISPATCH_KEYS)  # seeded by their own steps
        assert set(data) == set(layout.SERVICES[service].keys) - later | settings
        assert store.list_keys(object_store_user("staging", service)) == [data["s3_access_key"]]


def test_the_queue_workloads_reach_the_declared_nats_service_unless_the_stack_names_its_own() -> None:
    vault = InMemorySecretStore()
    seed("staging", HvacKvOver(vault), FakeObjectStoreAdmin(), ENDPOINTS)
    assert vault.read(layout.secret_path("staging", "worker")).data["nats_url"] == (
        "tls://nats.nats.svc.cluster.local:4222"  # the clusters' NATS speaks TLS only
    )
    local = EnvironmentEndpoints("http://s3:9000", "http://mlflow:5000", "nats://127.0.0.1:14222")
    seed("local", HvacKvOver(vault), FakeObjectStoreAdmin(), local)
    assert vault.read(layout.secret_path("local", "intake")).data["nats_url"] == "nats://127.0.0.1:14222"


def test_seeding_mlflow_users_completes_each_mlflow_workloads_secret_once_with_its_own_user() -> None:
    vault, store, mlflow = InMemorySecretStore(), FakeObjectStoreAdmin(), FakeMlflowUsers()
    seed("staging", HvacKvOver(vault), store, ENDPOINTS)
    assert seed_mlflow_users("staging", HvacKvOver(vault), mlflow) == {"training": "created"}
    assert seed_mlflow_users("staging", HvacKvOver(vault), mlflow) == {"training": "kept"}
    training = vault.read(layout.secret_path("staging", "training"))
    assert set(training.data) == set(layout.SERVICES["training"].keys) - set(layout.DISPATCH_KEYS)
    assert training.version == 2  # the object-store seed's version, then the MLflow user's
    assert mlflow.users == {"spira-staging-training": training.data["mlflow_password"]}
    assert "mlflow_username" not in vault.read(layout.secret_path("staging", "serving")).data


def test_seeding_mlflow_users_before_the_secrets_exist_creates_no_user() -> None:
    vault, mlflow = InMemorySecretStore(), FakeMlflowUsers()
    assert seed_mlflow_users("staging", HvacKvOver(vault), mlflow) == {"training": "no secret"}
    assert mlflow.users == {}


def test_a_seed_that_loses_the_race_to_another_seed_deletes_its_key() -> None:
    vault, store = InMemorySecretStore(), FakeObjectStoreAdmin()
    path = layout.secret_path("staging", "serving")
    vault.before_write = lambda p: (
        p == path
        and not vault.versions.get(p)
        and vault.versions.setdefault(p, [({"s3_access_key": "OTHER"}, vault.clock())])
    )
    outcome = seed("staging", HvacKvOver(vault), store, ENDPOINTS)
    assert outcome["serving"] == "kept"
    assert store.list_keys(object_store_user("staging", "serving")) == []


def test_status_shows_version_age_last_rotation_and_an_unfinished_rotation() -> None:
    clock = WallClock()
    vault, store = InMemorySecretStore(clock), CrashingFakeAdmin()
    seed("staging", HvacKvOver(vault), store, ENDPOINTS)
    clock.advance(3600)
    rotate("staging", "serving", vault, store, RecordingWait(), clock=clock)
    with pytest.raises(Crash):
        rotate(
            "staging", "training", vault, store, RecordingWait(), clock=clock, on_step=crash_at("published")
        )
    clock.advance(90)
    rows = {r.path: r for r in secret_status("staging", vault, clock.now)}
    serving, training, mlflow = (
        rows[layout.secret_ref("staging", s)] for s in ("serving", "training", "mlflow")
    )
    assert (serving.version, serving.age_s, serving.rotation) == (2, 90, None)
    assert serving.last_rotated is not None and mlflow.last_rotated is None and mlflow.age_s == 3690
    assert training.rotation == "published" and training.last_rotated is None
    assert rows[layout.secret_ref("staging", "objectstore")].version is None


@pytest.mark.parametrize(
    "seconds,shown", [(None, "-"), (7, "7s"), (67, "1m7s"), (3725, "1h2m"), (90000, "1d1h")]
)
def test_ages_read_in_at_most_two_units(seconds, shown) -> None:
    assert human_age(seconds) == shown


def _declaring_serving_settings(monkeypatch: pytest.MonkeyPatch, settings: dict[str, dict[str, str]]) -> None:
    import dataclasses

    from infra.environments import declared
    from spira.secrets import seed as seed_module

    monkeypatch.setattr(seed_module, "declared", lambda: dataclasses.replace(declared(), serving=settings))


def test_the_serving_settings_an_environment_declares_are_seeded_into_its_serving_secret_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _declaring_serving_settings(monkeypatch, {"production": {"max_batch_windows": "128"}})
    vault, store = InMemorySecretStore(), FakeObjectStoreAdmin()
    seed("production", HvacKvOver(vault), store, ENDPOINTS)
    seed("staging", HvacKvOver(vault), store, ENDPOINTS)
    assert vault.read(layout.secret_path("production", "serving")).data["max_batch_windows"] == "128"
    assert "max_batch_windows" not in vault.read(layout.secret_path("production", "training")).data
    assert "max_batch_windows" not in vault.read(layout.secret_path("staging", "serving")).data


def test_a_serving_setting_that_serving_does_not_read_is_refused_before_anything_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _declaring_serving_settings(monkeypatch, {"staging": {"max_batch_size": "128"}})
    vault, store = InMemorySecretStore(), FakeObjectStoreAdmin()
    with pytest.raises(ValueError, match="max_batch_size"):
        seed("staging", HvacKvOver(vault), store, ENDPOINTS)
    assert vault.read(layout.secret_path("staging", "serving")) is None


@pytest.mark.parametrize("env", ["local", "staging", "production"])
def test_every_environment_declares_its_monitored_sites_and_seed_writes_them_into_its_serving_secret(
    env: str,
) -> None:
    from spira_core.monitoring import parse_sites

    sites = parse_sites(declared().serving_settings(env).get("monitored_sites"))
    assert len(sites) >= 2, f"{env} declares no monitored sites (infra/environments.yaml serving_settings)"
    vault = InMemorySecretStore()
    seed(env, HvacKvOver(vault), FakeObjectStoreAdmin(), ENDPOINTS)
    seeded = vault.read(layout.secret_path(env, "serving")).data["monitored_sites"]
    assert parse_sites(seeded) == sites
