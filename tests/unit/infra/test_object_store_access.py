"""infra/environments.yaml's `object_store_access` is checked when read: only declared buckets, known
actions, and prefixes that end with '/' (they scope object actions and, through s3:prefix, listing)."""

from __future__ import annotations

import pytest
import yaml

from infra import environments
from infra.environments import DeclarationError, Grant, parse


def with_access(access: dict) -> dict:
    raw = yaml.safe_load(environments.DECLARATION.read_text())
    raw["object_store_access"] = access
    return raw


def test_grants_resolve_the_bucket_key_to_the_environments_bucket() -> None:
    d = parse(with_access({"svc": [{"bucket": "archive_bucket", "prefix": "in/", "actions": ["PutObject"]}]}))
    assert d.object_store_grants("staging", "svc") == (Grant("spira-staging-archive", "in/", ("PutObject",)),)
    assert d.object_store_grants("staging", "undeclared") == ()


@pytest.mark.parametrize(
    ("grant", "message"),
    [
        ({"bucket": "nope_bucket", "actions": ["GetObject"]}, "undeclared bucket 'nope_bucket'"),
        ({"bucket": "archive_bucket", "actions": ["*"]}, r"actions \['\*'\]"),
        ({"bucket": "archive_bucket", "actions": []}, "actions"),
        ({"bucket": "archive_bucket", "prefix": "in", "actions": ["PutObject"]}, "must end with '/'"),
    ],
)
def test_a_malformed_grant_is_refused_naming_the_service(grant: dict, message: str) -> None:
    with pytest.raises(DeclarationError, match=message) as err:
        parse(with_access({"svc": [grant]}))
    assert "object_store_access.svc" in str(err.value)


def test_a_listing_grant_under_a_prefix_is_kept_with_its_prefix() -> None:
    grant = {"bucket": "archive_bucket", "prefix": "uploads/", "actions": ["ListBucket", "DeleteObject"]}
    d = parse(with_access({"svc": [grant]}))
    assert d.object_store_grants("local", "svc") == (
        Grant("spira-local-archive", "uploads/", ("ListBucket", "DeleteObject")),
    )
