"""A secret cached with a TTL, that survives a Vault outage for a bounded grace period.

On expiry the next `get()` re-reads, so a new KV version is in use within the TTL without a restart. If
Vault is unreachable the last good value keeps serving until the grace period runs out; the status says
so, for /readyz and /metrics.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from spira_core.vault.client import SecretReader, SecretVersion, VaultError


class SecretUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class SecretStatus:
    version: int | None
    age_s: float | None  # since the last successful read
    stale: bool  # serving the last good value because Vault failed
    usable: bool
    last_error: str | None
    refreshes: int
    failures: int


class CachedSecret:
    def __init__(
        self, reader: SecretReader, ttl_s: float, grace_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.reader = reader
        self.ttl_s = ttl_s
        self.grace_s = grace_s
        self.clock = clock
        self._lock = threading.Lock()
        self._value: SecretVersion | None = None
        self._read_at: float | None = None
        self._last_error: str | None = None
        self._refreshes = 0
        self._failures = 0

    def get(self) -> dict[str, str]:
        return self.get_version().data

    def get_version(self) -> SecretVersion:
        with self._lock:
            now = self.clock()
            if self._value is not None and self._read_at is not None and now - self._read_at < self.ttl_s:
                return self._value
            try:
                self._value = self.reader.read()
                self._read_at = now
                self._last_error = None
                self._refreshes += 1
                return self._value
            except (VaultError, OSError, ValueError) as exc:
                self._failures += 1
                self._last_error = str(exc)
                if (
                    self._value is not None
                    and self._read_at is not None
                    and now - self._read_at < self.ttl_s + self.grace_s
                ):
                    return self._value
                raise SecretUnavailable(f"secret unavailable: {exc}") from exc

    def status(self) -> SecretStatus:
        with self._lock:
            now = self.clock()
            age = None if self._read_at is None else now - self._read_at
            usable = age is not None and age < self.ttl_s + self.grace_s
            return SecretStatus(
                version=self._value.version if self._value else None,
                age_s=age,
                stale=self._last_error is not None and self._value is not None,
                usable=usable,
                last_error=self._last_error,
                refreshes=self._refreshes,
                failures=self._failures,
            )
