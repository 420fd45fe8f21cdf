"""The evidence bucket through S3 (SeaweedFS locally, the clusters' object store), as the training workload."""

from __future__ import annotations

from spira.evidence.bundle import BundleStore, EvidenceError
from training.adapters.s3 import S3ArtifactStore
from training.ports import ArtifactMissing, ServiceUnavailable


class S3BundleStore(BundleStore):
    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str) -> None:
        self.bucket = bucket
        self._store = S3ArtifactStore(endpoint, access_key, secret_key, bucket, prefix="")

    def put(self, key: str, data: bytes) -> None:
        try:
            self._store.put(key, data)
        except ServiceUnavailable as exc:
            raise EvidenceError(str(exc)) from exc

    def get(self, key: str) -> bytes:
        try:
            return self._store.get(key)
        except ArtifactMissing as exc:
            raise EvidenceError(f"no object {self.uri(key)}") from exc
        except ServiceUnavailable as exc:
            raise EvidenceError(str(exc)) from exc
