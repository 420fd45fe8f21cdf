"""Each workload's object-store key, read from Vault as that workload, can do exactly what
infra/environments.yaml (`object_store_access`) grants it on the real SeaweedFS of the local stack:
serving only writes under its archive prefixes; nobody but the operator can read, list or delete the
patient archive."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import requests

from infra.environments import declared
from serving.archive import SYNTHETIC_PREFIX, UPLOADS_PREFIX, S3Archive, Spool, Uploader
from spira.secrets.objectstore import bucket_policy
from spira.secrets.seed import object_store_user
from spira.stack import StackConfig, StackInfo
from spira_core.settings import cached_service_secret, service_secret
from tests.fakes.serving import RecordingMetrics
from tests.fixtures.object_store_access import denied, own_client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def archived(local_stack: StackInfo) -> tuple[str, str]:
    """(bucket, key) of a patient upload already in the archive, put there by the operator."""
    bucket = service_secret("serving", local_stack.service_env("serving"))["archive_bucket"]
    key = f"{UPLOADS_PREFIX}2026/01/01/{uuid.uuid4().hex}.audio"
    local_stack.s3_client().put_object(Bucket=bucket, Key=key, Body=b"patient voice")
    return bucket, key


def still_there(info: StackInfo, bucket: str, key: str) -> bool:
    return info.s3_client().get_object(Bucket=bucket, Key=key)["Body"].read() == b"patient voice"


def test_serving_writes_patient_and_synthetic_uploads_under_its_prefixes(local_stack: StackInfo) -> None:
    s3, secret = own_client(local_stack, "serving")
    for prefix in (UPLOADS_PREFIX, SYNTHETIC_PREFIX):
        key = f"{prefix}2026/01/01/{uuid.uuid4().hex}.json"
        s3.put_object(Bucket=secret["archive_bucket"], Key=key, Body=b"{}")
        assert local_stack.s3_client().head_object(Bucket=secret["archive_bucket"], Key=key)


def test_serving_cannot_list_the_archive(local_stack: StackInfo, archived: tuple[str, str]) -> None:
    s3, _ = own_client(local_stack, "serving")
    bucket, _ = archived
    assert denied(lambda: s3.list_objects_v2(Bucket=bucket))
    assert denied(lambda: s3.list_objects_v2(Bucket=bucket, Prefix=UPLOADS_PREFIX))


def test_serving_cannot_read_an_archived_upload_not_even_one_it_wrote(
    local_stack: StackInfo, archived: tuple[str, str]
) -> None:
    s3, _ = own_client(local_stack, "serving")
    bucket, key = archived
    assert denied(lambda: s3.get_object(Bucket=bucket, Key=key))
    assert denied(lambda: s3.head_object(Bucket=bucket, Key=key))
    mine = f"{UPLOADS_PREFIX}2026/01/01/{uuid.uuid4().hex}.audio"
    s3.put_object(Bucket=bucket, Key=mine, Body=b"x")
    assert denied(lambda: s3.get_object(Bucket=bucket, Key=mine))


def test_serving_cannot_delete_an_archived_upload_one_by_one_or_in_a_batch(
    local_stack: StackInfo, archived: tuple[str, str]
) -> None:
    s3, _ = own_client(local_stack, "serving")
    bucket, key = archived
    assert denied(lambda: s3.delete_object(Bucket=bucket, Key=key))
    batch = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]})
    assert not batch.get("Deleted") and [e["Code"] for e in batch["Errors"]] == ["AccessDenied"]
    assert still_there(local_stack, bucket, key)


def test_serving_cannot_overwrite_by_copy_or_write_outside_its_prefixes(
    local_stack: StackInfo, archived: tuple[str, str]
) -> None:
    s3, _ = own_client(local_stack, "serving")
    bucket, key = archived
    assert denied(lambda: s3.put_object(Bucket=bucket, Key="elsewhere/x", Body=b"x"))
    assert denied(lambda: s3.put_object(Bucket=bucket, Key="uploadsX/x", Body=b"x"))
    assert denied(
        lambda: s3.copy_object(
            Bucket=bucket, Key=f"{UPLOADS_PREFIX}copy", CopySource={"Bucket": bucket, "Key": key}
        )
    )
    features = service_secret("training", local_stack.service_env("training"))["features_bucket"]
    assert denied(lambda: s3.put_object(Bucket=features, Key="x", Body=b"x"))


def test_training_cannot_read_list_or_write_the_archive_but_works_on_its_features(
    local_stack: StackInfo, archived: tuple[str, str]
) -> None:
    s3, secret = own_client(local_stack, "training")
    bucket, key = archived
    assert denied(lambda: s3.get_object(Bucket=bucket, Key=key))
    assert denied(lambda: s3.list_objects_v2(Bucket=bucket))
    assert denied(lambda: s3.put_object(Bucket=bucket, Key=f"{UPLOADS_PREFIX}t", Body=b"x"))
    features, probe = secret["features_bucket"], f"probe/{uuid.uuid4().hex}"
    s3.put_object(Bucket=features, Key=probe, Body=b"mfcc")
    assert s3.get_object(Bucket=features, Key=probe)["Body"].read() == b"mfcc"
    assert probe in {o["Key"] for o in s3.list_objects_v2(Bucket=features, Prefix="probe/")["Contents"]}


def test_mlflow_reaches_only_its_artifacts_bucket(local_stack: StackInfo, archived: tuple[str, str]) -> None:
    s3, secret = own_client(local_stack, "mlflow")
    bucket, key = archived
    assert denied(lambda: s3.get_object(Bucket=bucket, Key=key))
    assert denied(lambda: s3.list_objects_v2(Bucket=bucket))
    features = service_secret("training", local_stack.service_env("training"))["features_bucket"]
    assert denied(lambda: s3.list_objects_v2(Bucket=features))
    probe = f"probe/{uuid.uuid4().hex}"
    s3.put_object(Bucket=secret["artifacts_bucket"], Key=probe, Body=b"model")
    assert s3.get_object(Bucket=secret["artifacts_bucket"], Key=probe)["Body"].read() == b"model"
    s3.delete_object(Bucket=secret["artifacts_bucket"], Key=probe)


def test_the_servers_uploader_stores_the_gates_uploads_apart_from_patients_with_its_own_key(
    local_stack: StackInfo, tmp_path: Path
) -> None:
    secret = cached_service_secret(local_stack.service_env("serving"))
    spool = Spool(tmp_path / "spool", RecordingMetrics())
    uploader = Uploader(S3Archive(secret), tmp_path / "spool", RecordingMetrics())
    tag = uuid.uuid4().hex
    assert spool.submit(b"patient", {"label": "x"}, f"patient-{tag}.wav")
    assert spool.submit(b"synthetic", {"label": "x"}, f"gate-{tag}.wav", synthetic=True)
    assert uploader.drain_once() == 2, uploader.last_error
    admin, bucket = local_stack.s3_client(), secret.get()["archive_bucket"]
    where = {}
    for page in admin.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            if item["Key"].endswith(".audio"):
                where[admin.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()] = item["Key"]
    assert where[b"patient"].startswith(UPLOADS_PREFIX)
    assert where[b"synthetic"].startswith(SYNTHETIC_PREFIX)


def test_seaweedfs_holds_the_identity_actions_derived_from_the_declared_grants_only(
    local_stack: StackInfo,
) -> None:
    # SeaweedFS keeps, per IAM user, the policy document (which it evaluates: PutObject without
    # DeleteObject) and the identity actions it derives from it (`Write:<bucket>/<prefix>*`, which alone
    # would also allow deletes under the prefix); both must come from the declaration and nothing else.
    filer = f"http://127.0.0.1:{StackConfig.load(local_stack.home).filer_port}"
    archive = service_secret("serving", local_stack.service_env("serving"))["archive_bucket"]
    user = object_store_user(local_stack.env_name, "serving")
    identity = requests.get(f"{filer}/etc/iam/identities/{user}.json", timeout=10).json()
    assert sorted(identity["actions"]) == sorted(
        [f"Write:{archive}/{UPLOADS_PREFIX}*", f"Write:{archive}/{SYNTHETIC_PREFIX}*"]
    )
    policies = requests.get(f"{filer}/etc/iam/policies.json", timeout=10).json()["inlinePolicies"][user]
    grants = declared().object_store_grants(local_stack.env_name, "serving")
    assert list(policies.values()) == [normalised(json.loads(bucket_policy(grants)))]


def normalised(doc: dict) -> dict:
    """SeaweedFS stores a one-element Action or Resource list as a plain string."""
    one = lambda v: v[0] if isinstance(v, list) and len(v) == 1 else v  # noqa: E731
    return {**doc, "Statement": [{k: one(v) for k, v in s.items()} for s in doc["Statement"]]}
