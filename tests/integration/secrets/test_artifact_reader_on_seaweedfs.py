"""The artifact repository's key, as the Pulumi program configures SeaweedFS with it (the identities JSON of
the store's root Secret in the staging plan, unchanged), against a real `weed server`: Argo's executor can
list and fetch the labelled data and nothing else: no other prefix, no listing of the bucket, no write."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest

from infra.workflows import artifact_user, training_workflow
from spira.stack.seaweed import S3_CONFIG
from tests.fakes.infra import plan
from tests.fixtures.object_store_access import denied
from tests.fixtures.weed import weed_server

pytestmark = pytest.mark.integration
ENV = "staging"


@pytest.fixture(scope="module")
def identities() -> dict[str, dict]:
    root = plan(ENV, objectStore="seaweedfs").one("kubernetes:core/v1:Secret", "objectstore-root")
    config = json.loads(root.inputs["stringData"]["seaweedfs_s3_config"])
    return {i["name"]: i for i in config["identities"]}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory, identities: dict[str, dict]) -> Iterator[str]:
    home = tmp_path_factory.mktemp("weed")
    config = home / "identities.json"
    config.write_text(json.dumps({"identities": list(identities.values())}))
    with weed_server(home, s3_config=config) as (url, _log):
        yield url


def _client(endpoint: str, identity: dict):
    (cred,) = identity["credentials"]
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=S3_CONFIG,
        aws_access_key_id=cred["accessKey"],
        aws_secret_access_key=cred["secretKey"],
    )


def test_the_artifact_key_reads_the_labelled_data_and_nothing_else(
    endpoint: str, identities: dict[str, dict]
) -> None:
    bucket, prefix = f"spira-{ENV}-features", training_workflow().data_prefix
    admin = _client(endpoint, identities["admin"])
    admin.create_bucket(Bucket=bucket)
    for key in (f"{prefix}dataset.csv", f"{prefix}clips/a.wav", "train/abc/model", "holdout/CURRENT"):
        admin.put_object(Bucket=bucket, Key=key, Body=b"x")
    reader = _client(endpoint, identities[artifact_user(ENV)])
    # what Argo's executor does for the `data` input artifact: list the folder, get each object
    listed = reader.list_objects_v2(Bucket=bucket, Prefix=prefix)
    assert sorted(o["Key"] for o in listed["Contents"]) == [f"{prefix}clips/a.wav", f"{prefix}dataset.csv"]
    assert reader.get_object(Bucket=bucket, Key=f"{prefix}dataset.csv")["Body"].read() == b"x"
    # and nothing more
    assert denied(lambda: reader.get_object(Bucket=bucket, Key="train/abc/model"))
    assert denied(lambda: reader.list_objects_v2(Bucket=bucket, Prefix="train/"))
    assert denied(lambda: reader.list_objects_v2(Bucket=bucket))
    assert denied(lambda: reader.put_object(Bucket=bucket, Key=f"{prefix}dataset.csv", Body=b"y"))
    assert denied(lambda: reader.delete_object(Bucket=bucket, Key=f"{prefix}dataset.csv"))
    # listing the buckets is refused or shows nothing beyond the features bucket (SeaweedFS shows none)
    assert denied(reader.list_buckets) or {b["Name"] for b in reader.list_buckets()["Buckets"]} <= {bucket}
