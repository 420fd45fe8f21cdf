"""Fakes for the training ports: they subclass the ports and record what happened."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from training.adapters.memory import MemoryStore
from training.ports import (
    Clock,
    ModelRegistry,
    ModelVersionInfo,
    RandomSource,
    RunRecord,
    ServiceUnavailable,
)


class InMemoryStore(MemoryStore):
    """The memory store that records its writes; `fail_puts_after` makes it go down after that many writes
    (an S3 outage)."""

    def __init__(self, fail_puts_after: int | None = None) -> None:
        super().__init__()
        self.puts: list[str] = []
        self.fail_puts_after = fail_puts_after

    def put(self, key: str, data: bytes) -> None:
        if self.fail_puts_after is not None and len(self.puts) >= self.fail_puts_after:
            raise ServiceUnavailable(f"fake S3 is down (writing {key})")
        self.puts.append(key)
        super().put(key, data)


class FakeRegistry(ModelRegistry):
    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        self.logged_model_files: dict[str, list[str]] = {}
        self.versions: dict[str, list[ModelVersionInfo]] = {}
        self.aliases: dict[tuple[str, str], str] = {}
        self.model_bytes: dict[str, dict[str, bytes]] = {}

    def log_run(self, record: RunRecord) -> str:
        run_id = f"run-{len(self.runs) + 1}"
        self.runs[run_id] = record
        self.logged_model_files[run_id] = sorted(p.name for p in record.model_dir.iterdir())
        self.model_bytes[run_id] = {p.name: p.read_bytes() for p in record.model_dir.iterdir()}
        return run_id

    def register(self, model_name: str, run_id: str, tags: Mapping[str, str]) -> ModelVersionInfo:
        versions = self.versions.setdefault(model_name, [])
        info = ModelVersionInfo(version=str(len(versions) + 1), run_id=run_id, tags=dict(tags))
        versions.append(info)
        return info

    def _get(self, model_name: str, version: str) -> ModelVersionInfo:
        return next(v for v in self.versions[model_name] if v.version == version)

    def version_by_alias(self, model_name: str, alias: str) -> ModelVersionInfo | None:
        version = self.aliases.get((model_name, alias))
        return None if version is None else self._get(model_name, version)

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        self.aliases[(model_name, alias)] = version

    def set_version_tags(self, model_name: str, version: str, tags: Mapping[str, str]) -> None:
        info = self._get(model_name, version)
        dict.update(info.tags, tags)  # type: ignore[arg-type]

    def download_model(self, model_name: str, version: str, directory: Path) -> Path:
        folder = directory / "model"
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.model_bytes[self._get(model_name, version).run_id].items():
            (folder / name).write_bytes(data)
        return folder


class FixedClock(Clock):
    """Advances by `tick` seconds at each reading."""

    def __init__(self, tick: float = 1.0) -> None:
        self.t = 0.0
        self.tick = tick

    def now(self) -> float:
        self.t += self.tick
        return self.t


class FixedSeed(RandomSource):
    def __init__(self, seed: int = 0) -> None:
        self._seed = seed

    @property
    def seed(self) -> int:
        return self._seed
