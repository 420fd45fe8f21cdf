"""infra/environments.yaml's `retention`, checked when read: periods for every environment, one
patient-audio prefix and never in a versioned bucket (a deleted upload would live on as a previous
version), and the lifecycle rules each bucket gets from it."""

from __future__ import annotations

import copy

import pytest
import yaml

from infra import environments
from infra.environments import DeclarationError
from infra.retention import parse, retention

RAW = yaml.safe_load(environments.DECLARATION.read_text())["retention"]


def changed(**overrides) -> dict:
    raw = copy.deepcopy(RAW)
    raw.update(overrides)
    return raw


def test_the_archive_is_not_versioned_and_its_uploads_expire_after_the_declared_period() -> None:
    archive = retention().bucket("production", "spira-production-archive")
    assert not archive.versioned
    rules = {r["Filter"]["Prefix"]: r for r in archive.rules()}
    assert rules["uploads/"]["Expiration"] == {"Days": retention().patient_audio("production").days}
    assert not any("NoncurrentVersionExpiration" in r for r in archive.rules())


def test_versioned_buckets_expire_their_previous_versions() -> None:
    for lifecycle in retention().buckets("staging"):
        noncurrent = [r for r in lifecycle.rules() if "NoncurrentVersionExpiration" in r]
        assert bool(noncurrent) == lifecycle.versioned, lifecycle.bucket
    assert retention().bucket("staging", "spira-staging-backups").versioned


def test_every_declared_bucket_has_a_lifecycle_and_an_undeclared_one_is_refused() -> None:
    assert {b.bucket for b in retention().buckets("local")} == set(
        environments.declared().buckets("local").values()
    )
    with pytest.raises(DeclarationError, match="not a declared bucket"):
        retention().bucket("local", "spira-staging-archive")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (changed(versioned=["archive_bucket"]), "versioned bucket"),
        (changed(versioned=["nope_bucket"]), "undeclared buckets"),
        (changed(noncurrent_version_days={"local": 7}), "exactly"),
        (changed(noncurrent_version_days={"local": 0, "staging": 1, "production": 1}), ">= 1"),
        (
            changed(expire=[{**RAW["expire"][0], "patient_audio": False}, *RAW["expire"][1:]]),
            "exactly one prefix",
        ),
        (changed(expire=[{**RAW["expire"][0], "prefix": "uploads"}]), "must end with '/'"),
        (changed(expire=[{**RAW["expire"][0], "bucket": "nope_bucket"}]), "undeclared bucket"),
        (None, "missing"),
    ],
)
def test_a_malformed_retention_is_refused(raw, message: str) -> None:
    with pytest.raises(DeclarationError, match=message):
        parse(raw)
