"""The rotation waits for every consumer it can see, in the way each service reads its key: gauges of
every instance (serving), a restart (MLflow), the end of runs that started with the old key (training)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from infra.environments import declared
from infra.vault import layout
from spira.secrets.consumers import ConsumersNotReady, DiscoveredWait
from spira.secrets.fleet import TERMINATING
from spira.secrets.rotation import rotate
from spira.secrets.seed import EnvironmentEndpoints, object_store_user, service_values
from spira.secrets.store import SecretsError
from spira_core.run_lease import EXPIRES_S, WRITTEN_WITHIN_S, RunLease
from tests.fakes.fleet import FakeFleet, FakeRunLeases
from tests.fakes.secrets import CrashingFakeAdmin, InMemorySecretStore, WallClock

ENV = "staging"
REF = layout.secret_ref(ENV, "serving")


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


def waiter(
    service: str,
    fleet: FakeFleet,
    leases: FakeRunLeases,
    clock: WallClock,
    each_poll: Callable[[int], None] = lambda _n: None,
    timeout_s: float = 60,
) -> tuple[DiscoveredWait, list[str]]:
    said: list[str] = []
    polls = [0]

    def sleep(seconds: float) -> None:
        clock.advance(seconds)
        polls[0] += 1
        each_poll(polls[0])

    wait = DiscoveredWait(
        service, fleet, leases, timeout_s, clock, poll_s=1, margin_s=2, sleep=sleep, say=said.append
    )
    return wait, said


def lease(
    clock: WallClock, run_id: str, version: int, service: str = "training", age_s: float = 0
) -> RunLease:
    at = clock() - timedelta(seconds=age_s)
    return RunLease(run_id, service, version, at, at, f"job-{run_id} pid 1")


def test_every_serving_instance_must_show_the_new_version_including_a_terminating_pod(clock) -> None:
    fleet = FakeFleet(REF, clock)
    fleet.add("serving", "model-blue-1", 3)
    fleet.add("serving", "model-blue-2", 2)
    fleet.add("serving", "model-green-1", 2, state=TERMINATING)

    def progress(n: int) -> None:
        if n == 2:
            fleet.set("serving", "model-blue-2", 3)  # re-read Vault on its next TTL
        if n == 4:
            fleet.remove("serving", "model-green-1")  # its grace ended: gone away, key no longer held

    wait, said = waiter("serving", fleet, FakeRunLeases(), clock, progress)
    start = clock()
    wait.wait(REF, 3, start)
    assert (clock() - start).total_seconds() == 4 + 2, "4 polls, then the margin"
    assert "model-green-1 (terminating): version 2" in said[0] and "model-blue-2: version 2" in said[0]
    assert "model-blue-1" not in said[0]


def test_an_unreachable_or_gaugeless_instance_holds_the_rotation_and_is_named_at_the_timeout(clock) -> None:
    fleet = FakeFleet(REF, clock)
    fleet.add("serving", "model-a", "down")
    fleet.add("serving", "model-b", None)
    fleet.add("serving", "model-c", 7)
    wait, _ = waiter("serving", fleet, FakeRunLeases(), clock, timeout_s=5)
    with pytest.raises(ConsumersNotReady) as exc:
        wait.wait(REF, 7, clock())
    message = str(exc.value)
    assert "model-a: unreachable" in message and "model-b: no spira_secret_version" in message
    assert "model-c" not in message and "rerun `spira secrets rotate` to resume" in message


def test_a_service_with_no_instance_left_holds_nothing(clock) -> None:
    wait, said = waiter("serving", FakeFleet(REF, clock), FakeRunLeases(), clock)
    wait.wait(REF, 3, clock())
    assert said == ["no serving consumer holds an older version"]


def test_mlflow_is_restarted_once_and_waited_for_until_every_instance_is_new_and_ready(clock) -> None:
    fleet = FakeFleet(REF, clock)
    wait, said = waiter("mlflow", fleet, FakeRunLeases(), clock)
    published = clock()
    wait.wait(REF, 4, published)
    assert fleet.restarts == [("mlflow", published)]
    assert fleet.restart_polls <= 0 and "restarting mlflow" in said


def test_a_resumed_rotation_does_not_restart_mlflow_a_second_time(clock) -> None:
    fleet = FakeFleet(REF, clock)
    published = clock()
    fleet.restart("mlflow")  # the first run restarted it, then was interrupted
    clock.advance(30)
    wait, said = waiter("mlflow", fleet, FakeRunLeases(), clock)
    wait.wait(REF, 4, published)
    assert len(fleet.restarts) == 1 and "restarting mlflow" not in said


def test_a_restart_before_the_new_version_was_published_does_not_count(clock) -> None:
    fleet = FakeFleet(REF, clock)
    fleet.restart("mlflow")
    clock.advance(5)
    wait, _ = waiter("mlflow", fleet, FakeRunLeases(), clock)
    wait.wait(REF, 4, clock())
    assert len(fleet.restarts) == 2


def test_an_in_place_restart_waits_for_the_training_runs_that_talk_to_mlflow(clock) -> None:
    fleet = FakeFleet(REF, clock, restart_interrupts=True)
    leases = FakeRunLeases()
    leases.add(lease(clock, "run1", 9))
    leases.add(lease(clock, "dead", 9, age_s=EXPIRES_S + 1))  # a crashed run's lease: ignored

    def progress(n: int) -> None:
        if n == 3:
            assert fleet.restarts == [], "restarted under a live run"
            leases.end("run1")

    wait, said = waiter("mlflow", fleet, leases, clock, progress)
    wait.wait(REF, 4, clock())
    assert len(fleet.restarts) == 1
    assert "would fail the training runs" in said[0] and "run1" in said[0] and "dead" not in said[0]


def test_a_rolling_restart_does_not_wait_for_training_runs(clock) -> None:
    fleet = FakeFleet(REF, clock, restart_interrupts=False)
    leases = FakeRunLeases()
    leases.add(lease(clock, "run1", 9))
    wait, _ = waiter("mlflow", fleet, leases, clock)
    published = clock()
    wait.wait(REF, 4, published)
    assert fleet.restarts == [("mlflow", published)], "restarted at once, the run still going"


def test_training_waits_for_runs_that_started_with_an_older_version_only(clock) -> None:
    leases = FakeRunLeases()
    leases.add(lease(clock, "new", 6))

    def progress(n: int) -> None:
        if n == 1:  # a run that read version 5 just before the publication writes its lease late
            leases.add(lease(clock, "old", 5))
        if n == 10:
            leases.end("old")

    wait, said = waiter("training", FakeFleet(REF, clock), leases, clock, progress)
    start = clock()
    wait.wait(REF, 6, start)
    waited = (clock() - start).total_seconds()
    assert waited == WRITTEN_WITHIN_S + 9 + 2, "leases first read once late writers have written, then polled"
    assert "run old on job-old pid 1" in said[0] and "run new" not in said[0]


def test_a_run_with_settings_from_a_file_counts_as_holding_the_old_key(clock) -> None:
    leases = FakeRunLeases()
    leases.add(lease(clock, "filed", 0))
    wait, _ = waiter("training", FakeFleet(REF, clock), leases, clock, timeout_s=3)
    with pytest.raises(ConsumersNotReady, match=r"run filed .* with version unknown"):
        wait.wait(REF, 6, clock())


def test_a_service_without_declared_discovery_asks_for_an_explicit_wait(clock) -> None:
    wait, _ = waiter("frontend", FakeFleet(REF, clock), FakeRunLeases(), clock)
    with pytest.raises(SecretsError, match="--consumer URL or --consumer-ttl"):
        wait.wait(REF, 1, clock())


def test_a_rotation_held_by_a_consumer_keeps_both_keys_and_names_it_then_a_rerun_finishes(clock) -> None:
    vault, store = InMemorySecretStore(clock), CrashingFakeAdmin()
    user, path = object_store_user(ENV, "serving"), layout.secret_path(ENV, "serving")
    store.ensure_user(user, declared().object_store_grants(ENV, "serving"))
    key = store.create_key(user)
    values = service_values(ENV, "serving", EnvironmentEndpoints("http://s3", "http://mlflow"))
    vault.write(path, {**values, "s3_access_key": key.access_key, "s3_secret_key": key.secret_key}, cas=0)
    fleet = FakeFleet(REF, clock)
    fleet.add("serving", "model-x", 1, state=TERMINATING)
    wait, _ = waiter("serving", fleet, FakeRunLeases(), clock, timeout_s=5)
    with pytest.raises(ConsumersNotReady, match=r"model-x \(terminating\): version 1"):
        rotate(ENV, "serving", vault, store, wait, clock=clock)
    assert key.access_key in store.list_keys(user) and len(store.list_keys(user)) == 2
    fleet.remove("serving", "model-x")
    result = rotate(ENV, "serving", vault, store, wait, clock=clock)
    assert result.resumed and store.list_keys(user) == [result.new_access_key]
