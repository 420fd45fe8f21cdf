"""The ports a backup is made of: one per service's data, and the control of the services themselves.

Each part writes its files under its own folder of the backup (`take`), checks a backup without changing
anything (`check`, run for every part before any part restores), and restores (`restore`). What `take`
returns is stored in the manifest under the part's name and handed back to `check` and `restore`, so a part
can confirm after restoring that what it took is there again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Say = Any  # Callable[[str], None]; kept loose so a rich console's print fits


@dataclass(frozen=True)
class PartResult:
    """One line of the summary table: what a part took or restored."""

    what: str
    details: dict[str, Any]


class BackupPart(ABC):
    name: str

    @abstractmethod
    def take(self, dest: Path, say: Say) -> PartResult:
        """Write this part's files under dest (an empty folder); details go into the manifest."""

    @abstractmethod
    def check(self, src: Path, taken: dict[str, Any]) -> None:
        """Raise BackupRefused if this part of the backup cannot be restored here; change nothing."""

    @abstractmethod
    def restore(self, src: Path, taken: dict[str, Any], say: Say) -> PartResult:
        """Put the data back; idempotent. Raise if, afterwards, something taken is not there."""


class VaultSnapshots(BackupPart):
    """Vault's whole storage as one raft snapshot, and the keys that unseal it."""

    name = "vault"


class ObjectStoreCopy(BackupPart):
    """Every object of every bucket, and the object store's identities (users, keys, policies)."""

    name = "objectstore"


class MlflowDatabase(BackupPart):
    """MLflow's backend database (experiments, runs, registered models, versions, aliases)."""

    name = "mlflow"


class StackControl(ABC):
    """The services around the data: which stack this is, and what must stop and start for a restore."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Where the stack lives and answers (recorded in the manifest; compared on restore)."""

    @abstractmethod
    def ensure_running(self) -> None:
        """Raise BackupRefused naming the service that is not healthy."""

    @abstractmethod
    def stop_readers(self, say: Say) -> None:
        """Stop what reads the data or credentials only at start (MLflow), before anything is restored."""

    @abstractmethod
    def start_readers(self, say: Say) -> None:
        """Start them again, reading the restored data and credentials."""
