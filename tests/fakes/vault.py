"""Fakes for the Vault runtime port."""

from __future__ import annotations

import threading

from spira_core.vault import SecretReader, SecretVersion, VaultError


class FakeSecretReader(SecretReader):
    """Serves scripted versions; `down = True` makes every read fail like an unreachable Vault;
    `hang()` makes reads block (a Vault that accepts and never answers) until `release()`."""

    def __init__(self, data: dict[str, str]) -> None:
        self.version = SecretVersion(dict(data), 1)
        self.down = False
        self.reads = 0
        self.in_read = threading.Event()  # set while a read is blocked in hang()
        self._open = threading.Event()
        self._open.set()

    def hang(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def rotate(self, **changes: str) -> None:
        self.version = SecretVersion({**self.version.data, **changes}, self.version.version + 1)

    def read(self) -> SecretVersion:
        self.reads += 1
        if not self._open.is_set():
            self.in_read.set()
            self._open.wait(timeout=30)
            self.in_read.clear()
        if self.down:
            raise VaultError("Vault at http://fake is unreachable: ConnectionError")
        return self.version


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
