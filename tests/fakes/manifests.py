"""A checkov stand-in: records what it was handed and answers the failures it was given."""

from __future__ import annotations

from spira.manifests.checkov_scan import Checkov, CheckovFailure


class RecordingCheckov(Checkov):
    def __init__(self, failures: list[CheckovFailure] | None = None) -> None:
        self.failures = failures or []
        self.scanned: list[list[dict]] = []

    def scan(self, docs: list[dict]) -> list[CheckovFailure]:
        self.scanned.append(docs)
        return list(self.failures)
