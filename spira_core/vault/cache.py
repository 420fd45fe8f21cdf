"""A secret cached with a TTL, that survives a Vault outage for a bounded grace period.

On expiry the next `get()` re-reads, so a new KV version is in use within the TTL without a restart. If
Vault is unreachable the last good value keeps serving until the grace period runs out; the status says
so, for /readyz and /metrics.

The lock guards the cached state only, never a read: the network call happens outside it, one at a time
(single flight: while one caller reads, the others get the value they can still use, or wait for that read
when there is none). `status()` never touches the network, so readiness and /info cost microseconds even
when Vault hangs. After a failure the next read waits an exponential backoff (capped), so a Vault in
trouble is not hammered and callers in between get the last good value, or the last error, at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from spira_core.vault.client import SecretReader, SecretVersion, VaultError

log = logging.getLogger(__name__)


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
        self,
        reader: SecretReader,
        ttl_s: float,
        grace_s: float,
        clock: Callable[[], float] = time.monotonic,
        backoff_s: float = 0.5,
        backoff_cap_s: float = 30.0,
    ) -> None:
        self.reader = reader
        self.ttl_s = ttl_s
        self.grace_s = grace_s
        self.clock = clock
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self._lock = threading.Lock()
        self._read_done = threading.Condition(self._lock)
        self._reading = False
        self._value: SecretVersion | None = None
        self._read_at: float | None = None
        self._last_error: str | None = None
        self._consecutive_failures = 0
        self._next_try_at = float("-inf")
        self._refreshes = 0
        self._failures = 0

    def get(self) -> dict[str, str]:
        return self.get_version().data

    def _usable(self, now: float) -> bool:
        return self._read_at is not None and now - self._read_at < self.ttl_s + self.grace_s

    def _held(self, now: float) -> SecretVersion:
        """Under the lock: the value still usable, or SecretUnavailable with the last error."""
        if self._value is not None and self._usable(now):
            return self._value
        raise SecretUnavailable(f"secret unavailable: {self._last_error or 'never read'}")

    def retry_delay_s(self, consecutive_failures: int) -> float:
        """Exponential backoff after the n-th failure in a row, capped."""
        return min(self.backoff_cap_s, self.backoff_s * 2 ** max(0, consecutive_failures - 1))

    def get_version(self) -> SecretVersion:
        with self._lock:
            now = self.clock()
            if self._value is not None and self._read_at is not None and now - self._read_at < self.ttl_s:
                return self._value
            if self._reading:  # single flight: someone else is reading
                if self._value is not None and self._usable(now):
                    return self._value
                while self._reading:
                    self._read_done.wait()
                return self._held(self.clock())
            if now < self._next_try_at:  # backing off after a failure
                return self._held(now)
            self._reading = True
        try:
            value = self.reader.read()  # the network call: never under the lock
        except (VaultError, OSError, ValueError) as exc:
            return self._failed(exc)
        except BaseException:
            with self._lock:
                self._reading = False
                self._read_done.notify_all()
            raise
        with self._lock:
            if self._last_error is not None:
                log.warning("Vault secret readable again (version %s)", value.version)
            self._value, self._read_at = value, self.clock()
            self._last_error = None
            self._consecutive_failures = 0
            self._next_try_at = float("-inf")
            self._refreshes += 1
            self._reading = False
            self._read_done.notify_all()
            return value

    def _failed(self, exc: Exception) -> SecretVersion:
        with self._lock:
            now = self.clock()
            message = str(exc)
            if message != self._last_error:  # one line per distinct failure, not one per retry
                log.warning("Vault secret read failed: %s", message)
            self._failures += 1
            self._consecutive_failures += 1
            self._next_try_at = now + self.retry_delay_s(self._consecutive_failures)
            self._last_error = message
            self._reading = False
            self._read_done.notify_all()
            try:
                return self._held(now)
            except SecretUnavailable as unavailable:
                raise unavailable from exc

    def cached(self) -> dict[str, str]:
        """The last value read, from the cache only (empty before the first read): for settings that are
        looked up on a hot path and must never wait on Vault."""
        with self._lock:
            return dict(self._value.data) if self._value is not None else {}

    def status(self) -> SecretStatus:
        """From the cache only: no network, whatever Vault is doing."""
        with self._lock:
            now = self.clock()
            age = None if self._read_at is None else now - self._read_at
            return SecretStatus(
                version=self._value.version if self._value else None,
                age_s=age,
                stale=self._last_error is not None and self._value is not None,
                usable=self._usable(now),
                last_error=self._last_error,
                refreshes=self._refreshes,
                failures=self._failures,
            )
