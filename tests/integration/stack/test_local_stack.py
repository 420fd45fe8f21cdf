"""The local stack is real: secrets, objects and runs round-trip through the actual servers."""

from __future__ import annotations

import uuid

import boto3
import botocore.exceptions
import hvac
import hvac.exceptions
import pytest

from infra.vault import layout
from spira.stack import StackInfo
from spira.stack.seaweed import REGION, S3_CONFIG

pytestmark = pytest.mark.integration


def test_hvac_writes_and_reads_a_kv_v2_secret(local_stack: StackInfo) -> None:
    client = local_stack.vault_client()
    path = f"spira/test/{uuid.uuid4().hex}"
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={"k": "v1"}, mount_point="secret")
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={"k": "v2"}, mount_point="secret")
    got = client.secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", raise_on_deleted_version=True
    )
    assert got["data"]["data"] == {"k": "v2"}
    assert got["data"]["metadata"]["version"] == 2


def test_the_kv_mount_keeps_a_bounded_number_of_versions(local_stack: StackInfo) -> None:
    config = local_stack.vault_client().secrets.kv.v2.read_configuration(mount_point="secret")
    assert config["data"]["max_versions"] == layout.KV_MAX_VERSIONS


def test_boto3_round_trips_an_object_with_the_configured_keys(local_stack: StackInfo) -> None:
    s3 = local_stack.s3_client()
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a/b.bin", Body=b"\x00spira\xff")
    assert s3.get_object(Bucket=bucket, Key="a/b.bin")["Body"].read() == b"\x00spira\xff"


def test_the_object_store_refuses_wrong_keys(local_stack: StackInfo) -> None:
    wrong_secret = boto3.client(
        "s3",
        endpoint_url=local_stack.s3_endpoint,
        region_name=REGION,
        config=S3_CONFIG,
        aws_access_key_id=local_stack.s3_access_key,
        aws_secret_access_key="not-the-secret",
    )
    unknown_key = boto3.client(
        "s3",
        endpoint_url=local_stack.s3_endpoint,
        region_name=REGION,
        config=S3_CONFIG,
        aws_access_key_id="AKIANOBODY0000000000",
        aws_secret_access_key="x" * 40,
    )
    for client in (wrong_secret, unknown_key):
        with pytest.raises(botocore.exceptions.ClientError) as err:
            client.list_buckets()
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_mlflow_logs_a_run_whose_artifact_lands_in_s3(local_stack: StackInfo, tmp_path) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=local_stack.mlflow_uri)
    exp_id = client.create_experiment(f"stack-test-{uuid.uuid4().hex[:8]}")
    run = client.create_run(exp_id)
    artifact = tmp_path / "evidence.txt"
    artifact.write_text("spira")
    client.log_param(run.info.run_id, "p", "1")
    client.log_artifact(run.info.run_id, str(artifact))
    client.set_terminated(run.info.run_id)

    secret = local_stack.vault_client().secrets.kv.v2.read_secret_version(
        path=layout.secret_path("local", "mlflow"), mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    keys = [
        o["Key"]
        for o in local_stack.s3_client().list_objects_v2(Bucket=secret["artifacts_bucket"])["Contents"]
    ]
    assert any(k.endswith(f"{run.info.run_id}/artifacts/evidence.txt") for k in keys)


def test_a_service_logs_in_with_its_jwt_and_reads_only_its_own_secret(local_stack: StackInfo) -> None:
    client = hvac.Client(url=local_stack.vault_addr, verify=str(local_stack.vault_ca))
    client.auth.jwt.jwt_login(
        role=layout.role_name("local", "serving"),
        jwt=local_stack.service_jwt("serving"),
        path=layout.JWT_MOUNT,
    )
    own = client.secrets.kv.v2.read_secret_version(
        path=layout.secret_path("local", "serving"), mount_point="secret", raise_on_deleted_version=True
    )
    assert set(layout.SERVICES["serving"].keys) <= set(own["data"]["data"])
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.read_secret_version(
            path=layout.secret_path("local", "training"), mount_point="secret", raise_on_deleted_version=True
        )


def test_seeded_service_keys_work_on_their_own_bucket_only(local_stack: StackInfo) -> None:
    secret = local_stack.vault_client().secrets.kv.v2.read_secret_version(
        path=layout.secret_path("local", "serving"), mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    s3 = local_stack.s3_client(secret["s3_access_key"], secret["s3_secret_key"])
    s3.put_object(Bucket=secret["archive_bucket"], Key="uploads/probe", Body=b"1")
    with pytest.raises(botocore.exceptions.ClientError):
        s3.put_object(Bucket="spira-local-features", Key="probe", Body=b"1")
