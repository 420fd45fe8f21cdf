"""Deletion that honours the retention period of patients' audio (infra/environments.yaml, `retention`).

`expired` is the rule, pure: an object goes only when it was written at least the period before `now`;
anything younger, or written in the future by a skewed clock, stays. `purge` applies it through a small
port, listing and deleting under the one prefix; `S3Archive` is the port over S3 with the archive-purge
service's own key (ListBucket and DeleteObject under uploads/, nothing else: it never reads an upload).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from infra.retention import Expiry

# DeleteObjects takes at most 1000 keys per request.
DELETE_BATCH = 1000


@dataclass(frozen=True)
class StoredObject:
    key: str
    last_modified: datetime  # timezone-aware, as S3 reports it


def cutoff(now: datetime, days: int) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now - timedelta(days=days)


def expired(objects: Iterable[StoredObject], expiry: Expiry, now: datetime) -> list[str]:
    """Keys under the expiry's prefix written at or before now - period; nothing else."""
    limit = cutoff(now, expiry.days)
    return [o.key for o in objects if o.key.startswith(expiry.prefix) and o.last_modified <= limit]


class Archive(ABC):
    """What the purge needs from the object store."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[StoredObject]: ...

    @abstractmethod
    def delete(self, keys: list[str]) -> list[tuple[str, str]]:
        """Delete these keys; returns (key, error) for each one the store refused."""


@dataclass
class PurgeReport:
    bucket: str
    prefix: str
    days: int
    cutoff: datetime
    listed: int = 0
    deleted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = False

    @property
    def kept(self) -> int:
        return self.listed - len(self.deleted) - len(self.failed)


def purge(archive: Archive, expiry: Expiry, now: datetime, dry_run: bool = False) -> PurgeReport:
    """Delete what `expired` selects (or, dry, only report it), in batches, collecting refusals."""
    objects = list(archive.list(expiry.prefix))
    doomed = expired(objects, expiry, now)
    report = PurgeReport(
        expiry.bucket, expiry.prefix, expiry.days, cutoff(now, expiry.days), len(objects), dry_run=dry_run
    )
    if dry_run:
        report.deleted = doomed
        return report
    for i in range(0, len(doomed), DELETE_BATCH):
        batch = doomed[i : i + DELETE_BATCH]
        refused = archive.delete(batch)
        failed = {k for k, _ in refused}
        report.failed += refused
        report.deleted += [k for k in batch if k not in failed]
    return report


class S3Archive(Archive):
    """The port over S3 (boto3), one bucket."""

    def __init__(self, s3_client, bucket: str) -> None:
        self.s3 = s3_client
        self.bucket = bucket

    def list(self, prefix: str) -> Iterator[StoredObject]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                yield StoredObject(item["Key"], item["LastModified"])

    def delete(self, keys: list[str]) -> list[tuple[str, str]]:
        if not keys:
            return []
        resp = self.s3.delete_objects(
            Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
        )
        return [(e["Key"], f"{e.get('Code')}: {e.get('Message')}") for e in resp.get("Errors", [])]
