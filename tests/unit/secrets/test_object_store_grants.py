"""Each service user's object-store policy is rendered from the declared grants and nothing else:
serving may only put objects under its archive prefixes, training and MLflow reach only their bucket."""

from __future__ import annotations

import json

import pytest

from infra.environments import declared
from serving.archive import SYNTHETIC_PREFIX, UPLOADS_PREFIX
from spira.secrets.objectstore import bucket_policy
from spira.secrets.seed import EnvironmentEndpoints, object_store_user, seed
from tests.fakes.secrets import FakeObjectStoreAdmin, HvacKvOver, InMemorySecretStore

ENV = "production"


def allowed(service: str) -> set[tuple[str, str]]:
    """(action, resource) pairs the rendered policy of `service` allows."""
    doc = json.loads(bucket_policy(declared().object_store_grants(ENV, service)))
    assert all(s["Effect"] == "Allow" for s in doc["Statement"])
    return {(a, r) for s in doc["Statement"] for a in s["Action"] for r in s["Resource"]}


def test_serving_may_only_put_objects_under_its_uploads_and_synthetic_prefixes() -> None:
    archive = declared().buckets(ENV)["archive_bucket"]
    assert allowed("serving") == {
        ("s3:PutObject", f"arn:aws:s3:::{archive}/{UPLOADS_PREFIX}*"),
        ("s3:PutObject", f"arn:aws:s3:::{archive}/{SYNTHETIC_PREFIX}*"),
    }


def test_the_prefixes_serving_archives_under_are_the_ones_it_is_granted() -> None:
    granted = {g.prefix for g in declared().object_store_grants(ENV, "serving")}
    assert granted == {UPLOADS_PREFIX, SYNTHETIC_PREFIX}


@pytest.mark.parametrize(
    ("service", "bucket_key"), [("training", "features_bucket"), ("mlflow", "artifacts_bucket")]
)
def test_training_and_mlflow_reach_only_their_own_bucket_and_never_the_archive(service, bucket_key) -> None:
    own = declared().buckets(ENV)[bucket_key]
    resources = {r for _, r in allowed(service)}
    assert resources == {f"arn:aws:s3:::{own}", f"arn:aws:s3:::{own}/*"}
    assert ("s3:GetObject", f"arn:aws:s3:::{own}/*") in allowed(service)


@pytest.mark.parametrize("service", ["serving", "training", "mlflow"])
def test_no_policy_grants_a_wildcard_action(service) -> None:
    assert not any("*" in action for action, _ in allowed(service))


def test_a_service_without_grants_gets_no_policy_rather_than_an_empty_one() -> None:
    with pytest.raises(ValueError, match="at least one grant"):
        bucket_policy(())


def test_every_seed_reapplies_the_declared_grants_to_existing_users() -> None:
    vault, store = InMemorySecretStore(), FakeObjectStoreAdmin()
    endpoints = EnvironmentEndpoints("http://s3:9000", "http://mlflow:5000")
    seed(ENV, HvacKvOver(vault), store, endpoints)
    user = object_store_user(ENV, "serving")
    store.users[user] = ["s3:* on every bucket, as granted before"]  # an environment seeded long ago
    assert seed(ENV, HvacKvOver(vault), store, endpoints)["serving"] == "kept"
    assert store.users[user] == list(declared().object_store_grants(ENV, "serving"))
