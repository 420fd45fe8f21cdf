"""Store a bundle and read the current one back, over the BundleStore port (no I/O of its own)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from spira.evidence.bundle import (
    CARD_MD,
    CURRENT,
    MANIFEST,
    BundleStore,
    EvidenceError,
    check_file,
    check_manifest,
    make_bundle,
    pointer,
)
from spira.evidence.card import CardFacts


@dataclass(frozen=True)
class Stored:
    uri: str  # s3://bucket/<prefix><model>/<version>/<sha256>/
    digest: str  # sha256 of the bundle's manifest
    markdown: str

    @property
    def trailer(self) -> str:
        """The value of the promotion commit's `Spira-Evidence` trailer."""
        return f"{self.uri} sha256:{self.digest}"


def store_bundle(store: BundleStore, prefix: str, facts: CardFacts, reports: dict[str, bytes]) -> Stored:
    bundle = make_bundle(facts, reports)
    key = bundle.key(prefix, facts.model_name, facts.version)
    for name, data in sorted(bundle.files.items()):
        store.put(key + name, data)
    store.put(key + MANIFEST, bundle.manifest)  # last: a bundle with a manifest is whole
    uri = store.uri(key)
    store.put(
        f"{prefix}{facts.model_name}/{facts.version}/{CURRENT}",
        pointer(uri, bundle.digest, facts.created_at, facts.image),
    )
    return Stored(uri, bundle.digest, bundle.files[CARD_MD].decode())


def current_bundle(store: BundleStore, prefix: str, model_name: str, version: str) -> Stored:
    """The version's newest bundle, its manifest and card checked against the content hash."""
    where = f"{prefix}{model_name}/{version}/{CURRENT}"
    try:
        current = json.loads(store.get(where))
    except EvidenceError as exc:
        raise EvidenceError(f"no evidence for {model_name} version {version} ({store.uri(where)})") from exc
    uri, digest = current["uri"], current["sha256"]
    head = f"s3://{store.bucket}/"
    if not uri.startswith(head):
        raise EvidenceError(f"{store.uri(where)} names {uri}, outside s3://{store.bucket}/")
    key = uri[len(head) :]
    hashes = check_manifest(store.get(key + MANIFEST), digest)
    markdown = check_file(CARD_MD, store.get(key + CARD_MD), hashes)
    return Stored(uri, digest, markdown.decode())
