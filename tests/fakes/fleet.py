"""Fakes for the rotation's discovery ports: a fleet of instances with version gauges and restarts, and
run leases (spira.secrets.fleet)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from spira.secrets.consumers import GAUGE
from spira.secrets.fleet import READY, Fleet, FleetError, Instance, RestartState, RunLeases
from spira_core.run_lease import RunLease


class FakeFleet(Fleet):
    """Instances per service, each with the version its gauge shows (None: no gauge; "down": unreachable).
    A restart is recorded with the clock's time and completes after `restart_polls` looks at it."""

    def __init__(
        self, secret_ref: str, clock: Callable[[], datetime], restart_interrupts: bool = False
    ) -> None:
        self.secret_ref = secret_ref
        self.clock = clock
        self.restart_interrupts = restart_interrupts
        self.gauges: dict[str, dict[Instance, float | str | None]] = {}
        self.restarts: list[tuple[str, datetime]] = []
        self.restart_polls = 2
        self.scrapes: list[str] = []

    def add(self, service: str, name: str, version: float | str | None, state: str = READY) -> Instance:
        inst = Instance(name, state, name)
        self.gauges.setdefault(service, {})[inst] = version
        return inst

    def remove(self, service: str, name: str) -> None:
        self.gauges[service] = {i: v for i, v in self.gauges[service].items() if i.name != name}

    def set(self, service: str, name: str, version: float) -> None:
        for inst in self.gauges[service]:
            if inst.name == name:
                self.gauges[service][inst] = version

    def instances(self, service: str) -> list[Instance]:
        return list(self.gauges.get(service, {}))

    def metrics(self, service: str, instance: Instance) -> str:
        self.scrapes.append(instance.name)
        value = self.gauges[service][instance]
        if value == "down":
            raise FleetError(f"{instance.name}: connection refused")
        body = f"# TYPE {GAUGE} gauge\n"
        if value is not None:
            body += f'{GAUGE}{{path="{self.secret_ref}"}} {value}\n'
        return body

    def restart(self, service: str) -> None:
        self.restarts.append((service, self.clock()))

    def restart_state(self, service: str, since: datetime) -> RestartState:
        begun = any(s == service and at >= since for s, at in self.restarts)
        if not begun:
            return RestartState(False, False, f"{service}: old instances")
        self.restart_polls -= 1
        done = self.restart_polls <= 0
        return RestartState(True, done, f"{service}: {'new and ready' if done else 'rolling'}")


class FakeRunLeases(RunLeases):
    def __init__(self) -> None:
        self.held: dict[str, list[RunLease]] = {}

    def add(self, lease: RunLease) -> None:
        self.held.setdefault(lease.service, []).append(lease)

    def end(self, run_id: str) -> None:
        self.held = {s: [x for x in ls if x.run_id != run_id] for s, ls in self.held.items()}

    def leases(self, service: str) -> list[RunLease]:
        return list(self.held.get(service, []))
