"""An artifact store in this process's memory: for one-process runs (benchmarks, notebooks) that need the
stages' outputs only while they run."""

from __future__ import annotations

from training.ports import ArtifactMissing, ArtifactStore


class MemoryStore(ArtifactStore):
    """A dict of key → bytes."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = bytes(data)

    def get(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise ArtifactMissing(key) from None

    def exists(self, key: str) -> bool:
        return key in self.objects
