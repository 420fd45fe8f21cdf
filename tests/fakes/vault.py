"""Fakes for the Vault runtime port."""

from __future__ import annotations

from spira_core.vault import SecretReader, SecretVersion, VaultError


class FakeSecretReader(SecretReader):
    """Serves scripted versions; `down = True` makes every read fail like an unreachable Vault."""

    def __init__(self, data: dict[str, str]) -> None:
        self.version = SecretVersion(dict(data), 1)
        self.down = False
        self.reads = 0

    def rotate(self, **changes: str) -> None:
        self.version = SecretVersion({**self.version.data, **changes}, self.version.version + 1)

    def read(self) -> SecretVersion:
        self.reads += 1
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
