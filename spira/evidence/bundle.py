"""The evidence bundle: files by name, a manifest of their sha256, and the bundle's content hash (the
manifest's sha256). Pure: bytes in, bytes out. `BundleStore` is the port the object store sits behind."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

from spira.evidence.card import CardFacts, render_html, render_markdown

MANIFEST = "manifest.json"
CURRENT = "current.json"
CARD_MD, CARD_HTML, FACTS = "model_card.md", "model_card.html", "facts.json"


class EvidenceError(RuntimeError):
    pass


def _json(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Bundle:
    files: dict[str, bytes]  # without the manifest
    manifest: bytes
    digest: str  # sha256 of the manifest: names every file by its own hash

    def key(self, prefix: str, model_name: str, version: str) -> str:
        return f"{prefix}{model_name}/{version}/{self.digest}/"


def make_bundle(facts: CardFacts, reports: dict[str, bytes]) -> Bundle:
    """The card (Markdown, HTML), its facts as JSON, and the gates' own files (`reports`: name -> bytes)."""
    files = {
        CARD_MD: render_markdown(facts).encode(),
        CARD_HTML: render_html(facts).encode(),
        FACTS: _json(asdict(facts)),
        **reports,
    }
    manifest = _json({"files": {name: sha256(data) for name, data in sorted(files.items())}})
    return Bundle(files, manifest, sha256(manifest))


def check_manifest(manifest: bytes, digest: str) -> dict[str, str]:
    """The manifest's file hashes, after checking the manifest against the bundle's content hash."""
    if sha256(manifest) != digest:
        raise EvidenceError(f"the bundle's manifest does not hash to {digest}: changed after it was stored")
    return json.loads(manifest)["files"]


def check_file(name: str, data: bytes, hashes: dict[str, str]) -> bytes:
    if hashes.get(name) != sha256(data):
        raise EvidenceError(f"{name} does not match the bundle's manifest: changed after it was stored")
    return data


def pointer(uri: str, digest: str, created_at: str, image: str | None) -> bytes:
    return _json({"uri": uri, "sha256": digest, "created_at": created_at, "image": image})


class BundleStore(ABC):
    """Objects by key in the evidence bucket."""

    bucket: str

    @abstractmethod
    def put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; EvidenceError when there is none."""

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"
