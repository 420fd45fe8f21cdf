"""How rotation knows consumers use the new secret version before the old key is revoked.

Two ways: wait out the consumers' cache TTL plus a margin (every consumer re-reads Vault at least once
per TTL), or ask each consumer: its /metrics exports `spira_secret_version{path="<mount>/<path>"}`, the
version its CachedSecret holds. The second is exact, and catches a consumer that could not reach Vault
(it keeps serving the old value through its grace period, longer than the TTL).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests

from spira.secrets.fleet import CACHE, CLIENT_RUNS, RUN, START, Fleet, FleetError, RunLeases, reads
from spira.secrets.store import SecretsError
from spira_core.run_lease import WRITTEN_WITHIN_S

GAUGE = "spira_secret_version"

Clock = Callable[[], datetime]
Sleep = Callable[[float], None]


class ConsumersNotReady(SecretsError):
    pass


class ConsumerWait(ABC):
    @abstractmethod
    def wait(self, secret_ref: str, version: int, published_at: datetime) -> None:
        """Return once every consumer of `secret_ref` uses `version` or later (published at
        `published_at`, so a resumed rotation waits only what is left); raise ConsumersNotReady if not."""


@dataclass
class TtlWait(ConsumerWait):
    ttl_s: float
    margin_s: float
    clock: Clock
    sleep: Sleep = time.sleep

    def describe(self) -> str:
        return f"consumers' cache TTL {self.ttl_s:g}s + margin {self.margin_s:g}s"

    def wait(self, secret_ref: str, version: int, published_at: datetime) -> None:
        left = (published_at + timedelta(seconds=self.ttl_s + self.margin_s) - self.clock()).total_seconds()
        if left > 0:
            self.sleep(left)


def gauge_value(metrics_text: str, secret_ref: str) -> float | None:
    """The version gauge for `secret_ref` in a Prometheus text exposition, or None if absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == GAUGE and sample.labels.get("path") == secret_ref:
                return float(sample.value)
    return None


def http_fetch(url: str, timeout_s: float = 5.0) -> str:
    resp = requests.get(url, timeout=timeout_s)
    resp.raise_for_status()
    return resp.text


@dataclass
class MetricsWait(ConsumerWait):
    """Poll each consumer's /metrics until its gauge reaches the version, then keep a short margin for
    requests that started with the old credential."""

    urls: Sequence[str]
    timeout_s: float
    clock: Clock
    poll_s: float = 1.0
    margin_s: float = 2.0
    fetch: Callable[[str], str] = http_fetch
    sleep: Sleep = time.sleep

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("MetricsWait needs at least one consumer URL")
        self.urls = list(self.urls)

    def describe(self) -> str:
        return f"{GAUGE} on {', '.join(self.urls)} (timeout {self.timeout_s:g}s)"

    def _seen(self, url: str, secret_ref: str) -> str | float:
        try:
            value = gauge_value(self.fetch(url), secret_ref)
        except (requests.RequestException, OSError, ValueError) as exc:
            return f"unreachable ({exc.__class__.__name__})"
        return "no gauge" if value is None else value

    def wait(self, secret_ref: str, version: int, published_at: datetime) -> None:
        deadline = self.clock() + timedelta(seconds=self.timeout_s)
        pending = list(self.urls)
        seen: dict[str, str | float] = {}
        while True:
            seen = {url: self._seen(url, secret_ref) for url in pending}
            pending = [u for u, v in seen.items() if not (isinstance(v, float) and v >= version)]
            if not pending:
                self.sleep(self.margin_s)
                return
            if self.clock() >= deadline:
                lagging = "; ".join(
                    f"{u}: {seen[u] if isinstance(seen[u], str) else f'version {seen[u]:g}'}" for u in pending
                )
                raise ConsumersNotReady(
                    f"consumers did not reach version {version} of {secret_ref} within {self.timeout_s:g}s "
                    f"({lagging}); both keys stay valid, rerun `spira secrets rotate` to resume"
                )
            self.sleep(self.poll_s)


@dataclass
class DiscoveredWait(ConsumerWait):
    """Wait for every consumer of the service's secret the fleet and the run leases show, in the way the
    service reads its key (spira.secrets.fleet.READS): version gauges of every instance, a restart of a
    service that reads at start, or the end of every run that started with an older version."""

    service: str
    fleet: Fleet
    leases: RunLeases
    timeout_s: float
    clock: Clock
    poll_s: float = 1.0
    margin_s: float = 2.0
    sleep: Sleep = time.sleep
    say: Callable[[str], None] = lambda _m: None

    def describe(self) -> str:
        how = {
            CACHE: f"{GAUGE} of every {self.service} instance (pods behind its Services, or registered processes)",
            START: f"a restart of {self.service} (it reads its key at start), until every instance is new and ready",
            RUN: f"the end of every {self.service} run holding an older version (run leases)",
        }[reads(self.service)]
        return f"{how}; timeout {self.timeout_s:g}s"

    def wait(self, secret_ref: str, version: int, published_at: datetime) -> None:
        deadline = self.clock() + timedelta(seconds=self.timeout_s)
        mode = reads(self.service)
        if mode == CACHE:
            self._poll(lambda: self._gauges(secret_ref, version), deadline, secret_ref, version)
        elif mode == RUN:
            # a run that read the old version just before publishing writes its lease within this
            settle = (published_at + timedelta(seconds=WRITTEN_WITHIN_S) - self.clock()).total_seconds()
            if settle > 0:
                self.sleep(settle)
            self._poll(lambda: self._runs(self.service, version), deadline, secret_ref, version)
        else:
            self._restart(published_at, deadline, secret_ref, version)
        self.sleep(self.margin_s)  # requests that began with the old key

    # -- what holds the old version now ------------------------------------------------------------------
    def _gauges(self, secret_ref: str, version: int) -> tuple[list[str], list[str]]:
        holding, ok = [], []
        for inst in self.fleet.instances(self.service):
            try:
                value = gauge_value(self.fleet.metrics(self.service, inst), secret_ref)
            except (FleetError, requests.RequestException, OSError, ValueError) as exc:
                holding.append(f"{inst}: unreachable ({exc})")
                continue
            if value is None:
                holding.append(f"{inst}: no {GAUGE}")
            elif value < version:
                holding.append(f"{inst}: version {value:g}")
            else:
                ok.append(str(inst))
        return holding, ok

    def _runs(self, service: str, version: int | None) -> tuple[list[str], list[str]]:
        """Live runs of `service` holding a version older than `version` (None: any live run)."""
        now = self.clock()
        holding = [
            f"run {lease.run_id[:12]} on {lease.holder}, started {lease.started_at.isoformat(timespec='seconds')} "
            f"with version {lease.secret_version or 'unknown'}"
            for lease in self.leases.leases(service)
            if lease.live(now) and (version is None or lease.holds_older_than(version))
        ]
        return holding, []

    # -- waiting -----------------------------------------------------------------------------------------
    def _poll(
        self,
        holders: Callable[[], tuple[list[str], list[str]]],
        deadline: datetime,
        secret_ref: str,
        version: int,
        what: str = "",
        who: str = "",
    ) -> None:
        said, who = False, who or self.service
        while True:
            holding, ok = holders()
            if not holding:
                self.say(
                    f"{who} ready: {', '.join(ok)}" if ok else f"no {who} consumer holds an older version"
                )
                return
            if not said:
                self.say(f"waiting{what} for: {'; '.join(holding)}")
                said = True
            if self.clock() >= deadline:
                raise ConsumersNotReady(
                    f"{secret_ref}: version {version} not in use everywhere within {self.timeout_s:g}s{what}; "
                    f"held by {'; '.join(holding)}. Both keys stay valid; rerun `spira secrets rotate` "
                    "to resume"
                )
            self.sleep(self.poll_s)

    def _restart(self, published_at: datetime, deadline: datetime, secret_ref: str, version: int) -> None:
        # Restart once per rotation: a resumed rotation whose restart began (after publishing) only waits.
        if not self.fleet.restart_state(self.service, published_at).begun:
            if self.fleet.restart_interrupts:
                for client in CLIENT_RUNS.get(self.service, ()):
                    self._poll(
                        lambda c=client: self._runs(c, None),
                        deadline,
                        secret_ref,
                        version,
                        what=f" (restarting {self.service} in place would fail the {client} runs that use it)",
                        who=client,
                    )
            self.say(f"restarting {self.service}")
            self.fleet.restart(self.service)
        self._poll(lambda: self._not_restarted(published_at), deadline, secret_ref, version)

    def _not_restarted(self, published_at: datetime) -> tuple[list[str], list[str]]:
        state = self.fleet.restart_state(self.service, published_at)
        return ([] if state.done else [state.seen]), ([state.seen] if state.done else [])
