"""The purge's rule, off the network: an upload goes only once it is at least the retention period old;
younger ones, other prefixes and clock-skewed future ones stay. The purge deletes in S3's batches and
reports what the store refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from infra.retention import Expiry, retention
from spira.archive.purge import DELETE_BATCH, Archive, StoredObject, expired, purge

NOW = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
UPLOADS = Expiry("spira-local-archive", "uploads/", days=30, patient_audio=True)


def obj(key: str, age: timedelta) -> StoredObject:
    return StoredObject(key, NOW - age)


class RecordingArchive(Archive):
    """An archive in memory that records each delete request and refuses the keys it is told to."""

    def __init__(self, objects: list[StoredObject], refuse: frozenset[str] = frozenset()) -> None:
        self.objects = {o.key: o for o in objects}
        self.refuse = refuse
        self.requests: list[list[str]] = []

    def list(self, prefix: str) -> Iterator[StoredObject]:
        return iter([o for k, o in sorted(self.objects.items()) if k.startswith(prefix)])

    def delete(self, keys: list[str]) -> list[tuple[str, str]]:
        self.requests.append(list(keys))
        refused = [(k, "AccessDenied: no") for k in keys if k in self.refuse]
        for k in keys:
            if k not in self.refuse:
                self.objects.pop(k, None)
        return refused


def test_an_upload_exactly_the_period_old_goes_and_one_a_second_younger_stays() -> None:
    at_limit = obj("uploads/a", timedelta(days=30))
    younger = obj("uploads/b", timedelta(days=30) - timedelta(seconds=1))
    assert expired([at_limit, younger], UPLOADS, NOW) == ["uploads/a"]


def test_other_prefixes_and_future_timestamps_are_never_selected() -> None:
    objects = [
        obj("synthetic/old", timedelta(days=400)),
        obj("recordings/old", timedelta(days=400)),
        obj("uploads/from-a-skewed-clock", -timedelta(days=2)),
    ]
    assert expired(objects, UPLOADS, NOW) == []


def test_a_naive_now_is_refused_rather_than_guessed() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        expired([], UPLOADS, NOW.replace(tzinfo=None))


def test_a_dry_run_reports_what_would_go_and_deletes_nothing() -> None:
    archive = RecordingArchive(
        [obj("uploads/old", timedelta(days=31)), obj("uploads/new", timedelta(days=1))]
    )
    report = purge(archive, UPLOADS, NOW, dry_run=True)
    assert report.deleted == ["uploads/old"] and report.kept == 1 and report.dry_run
    assert archive.requests == [] and set(archive.objects) == {"uploads/old", "uploads/new"}


def test_the_purge_deletes_in_batches_of_s3s_limit_and_keeps_the_young() -> None:
    old = [obj(f"uploads/{i:05d}", timedelta(days=31)) for i in range(DELETE_BATCH + 5)]
    archive = RecordingArchive([*old, obj("uploads/young", timedelta(days=29))])
    report = purge(archive, UPLOADS, NOW)
    assert [len(r) for r in archive.requests] == [DELETE_BATCH, 5]
    assert len(report.deleted) == DELETE_BATCH + 5 and report.kept == 1
    assert set(archive.objects) == {"uploads/young"}


def test_keys_the_store_refuses_are_reported_as_failed_not_as_deleted() -> None:
    archive = RecordingArchive(
        [obj("uploads/a", timedelta(days=40)), obj("uploads/b", timedelta(days=40))],
        refuse=frozenset({"uploads/b"}),
    )
    report = purge(archive, UPLOADS, NOW)
    assert report.deleted == ["uploads/a"]
    assert report.failed == [("uploads/b", "AccessDenied: no")]


def test_the_declared_patient_audio_period_is_what_the_purge_uses_in_each_environment() -> None:
    for env in ("local", "staging", "production"):
        audio = retention().patient_audio(env)
        assert (audio.bucket, audio.prefix) == (f"spira-{env}-archive", "uploads/")
    assert retention().patient_audio("production").days >= retention().patient_audio("staging").days
