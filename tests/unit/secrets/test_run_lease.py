"""A run's lease: what it records, when it counts as held, and the local registry of serving processes."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from spira.stack.consumers import Registration, register, registered, unregister
from spira_core.run_lease import EXPIRES_S, UNKNOWN_VERSION, RunLease, lease_key

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def test_a_lease_round_trips_through_its_json_and_lives_in_its_services_prefix() -> None:
    lease = RunLease("abc", "training", 4, T0, T0 + timedelta(seconds=20), "job-1 pid 7")
    assert RunLease.from_json(lease.to_json()) == lease
    assert lease_key("training", "abc") == "_leases/training/abc.json"


def test_a_lease_is_live_until_its_heartbeat_is_older_than_the_expiry() -> None:
    lease = RunLease("abc", "training", 4, T0, T0, "h")
    assert lease.live(T0 + timedelta(seconds=EXPIRES_S))
    assert not lease.live(T0 + timedelta(seconds=EXPIRES_S + 1))
    assert lease.beat(T0 + timedelta(seconds=EXPIRES_S)).live(T0 + timedelta(seconds=EXPIRES_S + 1))


def test_a_lease_holds_versions_older_than_the_new_one_or_an_unknown_one() -> None:
    def held(version: int) -> bool:
        return RunLease("a", "training", version, T0, T0, "h").holds_older_than(5)

    assert held(4) and held(UNKNOWN_VERSION)
    assert not held(5) and not held(6)


def test_registered_serving_processes_are_listed_while_alive_and_dropped_when_gone(tmp_path: Path) -> None:
    program = Path("/proc/self/cmdline").read_bytes().split(b"\0")[0].decode()  # this test process
    me = Registration("serving", "serve-1", os.getpid(), program, "http://127.0.0.1:1/metrics")
    gone = Registration("serving", "serve-2", 2**22 + 12345, "bentoml", "http://127.0.0.1:2/metrics")
    register(tmp_path, me)
    register(tmp_path, gone)
    assert registered(tmp_path, "serving") == [me]
    assert not (tmp_path / "run" / "consumers" / "serving" / "serve-2.json").exists()
    unregister(tmp_path, "serving", "serve-1")
    assert registered(tmp_path, "serving") == []
