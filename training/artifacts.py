"""Content-addressed stage outputs.

A stage's key is the sha256 of its inputs' identities (upstream keys or dataset fingerprints), its
parameters and its code version (the source of the modules that compute it). Its outputs live under
`<stage>/<key>/`, and `manifest.json` (listing every file with its sha256) is written last: a stage whose
manifest exists is complete and is skipped on rerun; one that died halfway left no manifest and reruns.
Everything written is a deterministic function of the key's inputs, so reruns are byte-identical.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from training.ports import ArtifactMissing, ArtifactStore

MANIFEST = "manifest.json"
KEY_CHARS = 24  # 96 bits of sha256: plenty for naming, short enough to read


def canonical_json(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def code_version(modules: Iterable[str]) -> str:
    """sha256 over the source files of `modules`: changing any of them changes the stage's key.

    Computed once per process, so every key a process derives names the code it actually runs even if
    the files change on disk meanwhile.
    """
    return _code_version(tuple(sorted(modules)))


@lru_cache(maxsize=32)
def _code_version(modules: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in modules:
        module = importlib.import_module(name)
        digest.update(name.encode())
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:KEY_CHARS]


def stage_key(stage: str, inputs: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json({"stage": stage, "inputs": inputs})).hexdigest()[:KEY_CHARS]


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def npy_load(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


class ArtifactCorrupt(RuntimeError):
    """A stored file whose bytes do not match its manifest."""


@dataclass(frozen=True)
class StageOutput:
    stage: str
    key: str
    manifest: Mapping[str, Any]
    store: ArtifactStore

    def read(self, name: str) -> bytes:
        data = self.store.get(f"{self.stage}/{self.key}/{name}")
        expected = self.manifest["files"].get(name)
        if expected is None:
            raise ArtifactMissing(f"{self.stage}/{self.key}/{name} is not in the manifest")
        if hashlib.sha256(data).hexdigest() != expected:
            raise ArtifactCorrupt(f"{self.stage}/{self.key}/{name} does not match its manifest hash")
        return data

    def read_json(self, name: str) -> Any:
        return json.loads(self.read(name))

    @property
    def info(self) -> Mapping[str, Any]:
        return self.manifest.get("info", {})


def find_output(store: ArtifactStore, stage: str, key: str) -> StageOutput | None:
    """The completed output of (stage, key), or None if it was never finished."""
    try:
        manifest = json.loads(store.get(f"{stage}/{key}/{MANIFEST}"))
    except ArtifactMissing:
        return None
    return StageOutput(stage, key, manifest, store)


def write_output(
    store: ArtifactStore,
    stage: str,
    key: str,
    inputs: Mapping[str, Any],
    files: Mapping[str, bytes],
    info: Mapping[str, Any] | None = None,
) -> StageOutput:
    """Write every file, then the manifest that marks the stage complete."""
    for name in sorted(files):
        store.put(f"{stage}/{key}/{name}", files[name])
    manifest = {
        "stage": stage,
        "key": key,
        "inputs": dict(inputs),
        "files": {name: hashlib.sha256(files[name]).hexdigest() for name in sorted(files)},
        "info": dict(info or {}),
    }
    store.put(f"{stage}/{key}/{MANIFEST}", canonical_json(manifest))
    return StageOutput(stage, key, manifest, store)
