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

from spira.secrets.store import SecretsError

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
