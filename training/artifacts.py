"""Content-addressed stage outputs.

A stage's key is the sha256 of its inputs' identities (upstream keys or dataset fingerprints), its
parameters and its code version (the source of the modules that compute it). Its outputs live under
`<stage>/<key>/`, and `manifest.json` (listing every file with its sha256) is written last: a stage whose
manifest exists is complete and is skipped on rerun; one that died halfway left no manifest and reruns.
Everything written is a deterministic function of the key's inputs, so reruns are byte-identical.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
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


# The packages whose modules count as the project's code in a stage's key (third-party code is pinned by
# requirements.lock and the image, not here).
PROJECT_PACKAGES = ("spira_core", "training")


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
        digest.update(name.encode() + b"\0")
        digest.update(module_source(name))
    return digest.hexdigest()[:KEY_CHARS]


def _module_file(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(spec.origin) if spec is not None and spec.origin not in (None, "built-in") else None


def module_source(name: str) -> bytes:
    path = _module_file(name)
    if path is None:
        raise ModuleNotFoundError(f"no source file for module {name}")
    return path.read_bytes()


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _imported_modules(name: str) -> set[str]:
    """The project modules `name` imports anywhere in its source (inside functions too)."""
    path = _module_file(name)
    assert path is not None
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(module_source(name))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            # `from pkg import mod` names a module; `from mod import name` names the module itself
            candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for candidate in candidates:
            if candidate.split(".")[0] in PROJECT_PACKAGES and _is_module(candidate):
                found.add(candidate)
                # importing a.b.c runs a/__init__ and a/b/__init__ first
                parts = candidate.split(".")
                found.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return found


@lru_cache(maxsize=64)
def module_closure(root: str) -> tuple[str, ...]:
    """`root` and every project module it imports, directly or through others, sorted."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_imported_modules(name) - seen)
    return tuple(sorted(seen))


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
