"""The restore drill on a private stack: seed, `spira backup create`, lose every service's data, bring the
stack up empty, `spira backup restore`, and find every secret, object and model version again, with the
services' credentials working."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import hvac
import pytest

from infra.vault import layout
from serving.archive import UPLOADS_PREFIX
from spira.stack import LocalStack, StackInfo
from spira.stack.private import throwaway_stack
from tests.fixtures.stack import mlflow_login

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENV = "local"
MODEL = "drill-model"
DATA_DIRS = ("vault/data", "vault/init.json", "s3/data", "mlflow")  # what a lost disk takes; config stays


@pytest.fixture(scope="module")
def drill_stack() -> Iterator[tuple[LocalStack, StackInfo]]:
    """A stack of its own (not the session's `local_stack`): this test destroys its data. MLflow calls act
    as its operator (MLflow's admin, as `spira stack env` exports it)."""
    with throwaway_stack(with_registry=False) as pair, pytest.MonkeyPatch.context() as mp:
        for key, value in pair[1].mlflow_operator_env().items():
            mp.setenv(key, value)
        yield pair


def _spira(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPIRA_HOME": str(home), "COLUMNS": "200"}
    spira = Path(sys.executable).parent / "spira"
    return subprocess.run([str(spira), *args], env=env, capture_output=True, text=True, timeout=600)


def _kv_state(client: hvac.Client) -> dict[str, dict]:
    """Every KV secret: its current version and the data of every version."""
    state: dict[str, dict] = {}

    def walk(prefix: str) -> None:
        for key in client.secrets.kv.v2.list_secrets(path=prefix, mount_point=layout.KV_MOUNT)["data"][
            "keys"
        ]:
            if key.endswith("/"):
                walk(prefix + key)
                continue
            path = prefix + key
            meta = client.secrets.kv.v2.read_secret_metadata(path=path, mount_point=layout.KV_MOUNT)["data"]
            versions = {
                v: client.secrets.kv.v2.read_secret_version(
                    path=path, version=v, mount_point=layout.KV_MOUNT
                )["data"]["data"]
                for v in map(int, meta["versions"])
            }
            state[path] = {"current": meta["current_version"], "versions": versions}

    walk("")
    return state


def _objects(info: StackInfo, buckets: list[str]) -> dict[str, dict[str, str]]:
    s3 = info.s3_client()
    found: dict[str, dict[str, str]] = {}
    for bucket in buckets:
        found[bucket] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                found[bucket][item["Key"]] = hashlib.sha256(body).hexdigest()
    return found


def _service_secret(info: StackInfo, service: str) -> dict[str, str]:
    """The service's secret as the service itself reads it: JWT login with its role, then KV read."""
    client = hvac.Client(url=info.vault_addr, verify=str(info.vault_ca), timeout=30)
    client.auth.jwt.jwt_login(
        role=layout.role_name(ENV, service), jwt=info.service_jwt(service), path=layout.JWT_MOUNT
    )
    return client.secrets.kv.v2.read_secret_version(
        path=layout.secret_path(ENV, service), mount_point=layout.KV_MOUNT, raise_on_deleted_version=True
    )["data"]["data"]


def _seed_model(info: StackInfo, workdir: Path) -> tuple[str, str]:
    """A run with a small artifact, registered as a model version with the alias `champion`."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=info.mlflow_uri)
    experiment = client.create_experiment("backup-drill")
    run = client.create_run(experiment)
    model_dir = workdir / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "weights.txt").write_text("drill weights 0.25 0.75\n")
    client.log_artifacts(run.info.run_id, str(model_dir), artifact_path="model")
    client.log_metric(run.info.run_id, "accuracy", 0.97)
    client.set_terminated(run.info.run_id)
    client.create_registered_model(MODEL)
    version = client.create_model_version(
        MODEL, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    ).version
    client.set_registered_model_alias(MODEL, "champion", version)
    return run.info.run_id, str(version)


def _model_back(info: StackInfo, run_id: str, version: str, workdir: Path) -> None:
    """The alias names the same version, and its artifact downloads through MLflow (MLflow's S3 key works)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=info.mlflow_uri)
    by_alias = client.get_model_version_by_alias(MODEL, "champion")
    assert (by_alias.version, by_alias.run_id) == (version, run_id)
    assert client.get_run(run_id).data.metrics == {"accuracy": 0.97}
    shutil.rmtree(workdir, ignore_errors=True)
    got = client.download_artifacts(run_id, "model/weights.txt", str(workdir))
    assert Path(got).read_text() == "drill weights 0.25 0.75\n"


def test_a_backup_restores_every_secret_object_and_model_version_into_a_stack_that_lost_its_data(
    drill_stack: tuple[LocalStack, StackInfo], tmp_path: Path
) -> None:
    stack, info = drill_stack
    root = info.vault_client()
    # seed: two extra secrets, one of them at version 2; objects in two buckets; a model version + alias
    extra = f"spira/{ENV}/drill/extra"
    root.secrets.kv.v2.create_or_update_secret(path=extra, secret={"a": "1"}, mount_point=layout.KV_MOUNT)
    root.secrets.kv.v2.create_or_update_secret(
        path=extra, secret={"a": "2", "b": "x"}, mount_point=layout.KV_MOUNT
    )
    root.secrets.kv.v2.create_or_update_secret(
        path=f"spira/{ENV}/drill/other", secret={"token": "t0"}, mount_point=layout.KV_MOUNT
    )
    archive = _service_secret(info, "serving")["archive_bucket"]
    features = _service_secret(info, "training")["features_bucket"]
    s3 = info.s3_client()
    payloads = {
        (archive, "2026/12/06/patient-0001.wav"): os.urandom(300_000),
        (archive, "2026/12/06/patient-0001.json"): b'{"probability": 0.91}',
        (archive, "empty"): b"",
        (features, "mfcc/abc123/part-0.npy"): os.urandom(70_000),
    }
    for (bucket, key), body in payloads.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"origin": "drill"})
    run_id, version = _seed_model(info, tmp_path / "seed")

    buckets = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
    secrets_before = _kv_state(root)
    objects_before = _objects(info, buckets)
    assert extra in secrets_before and secrets_before[extra]["current"] == 2
    assert {k for (b, k) in payloads if b == archive} <= set(objects_before[archive])

    backup = tmp_path / "backup"
    made = _spira(info.home, "backup", "create", "--out", str(backup))
    assert made.returncode == 0, made.stderr
    assert "vault" in made.stdout and "objectstore" in made.stdout and "mlflow" in made.stdout

    # the disk is lost: every service's data; the stack comes back up empty
    stack.down()
    for rel in DATA_DIRS:
        path = info.home / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    empty = stack.up()
    assert extra not in _kv_state(empty.vault_client())
    assert _objects(empty, [archive]) == {archive: {}}
    assert empty.vault_root_token != info.vault_root_token  # a Vault initialised anew, with new keys
    unrecorded = _service_secret(empty, "serving")  # a key the empty stack minted; the backup never knew it

    for attempt in ("restore", "restore again (idempotent)"):
        restored = _spira(info.home, "backup", "restore", str(backup))
        assert restored.returncode == 0, f"{attempt}: {restored.stderr}"
        keys = json.loads((info.home / "vault" / "init.json").read_text())
        assert keys["root_token"] == info.vault_root_token  # the backup's keys are the stack's again
        after = dataclasses.replace(info, vault_root_token=keys["root_token"])
        assert {s.name: s.health for s in stack.status() if s.name in ("openbao", "seaweedfs", "mlflow")} == {
            "openbao": "healthy",
            "seaweedfs": "healthy",
            "mlflow": "healthy",
        }
        assert _kv_state(after.vault_client()) == secrets_before
        assert _objects(after, buckets) == objects_before
        assert after.s3_client().head_object(Bucket=archive, Key="empty")["Metadata"] == {"origin": "drill"}
        _model_back(after, run_id, version, tmp_path / "download")
        # the training identity in the restored Vault still logs in to the restored MLflow
        training = _service_secret(after, "training")
        probe = mlflow_login(after.mlflow_uri, training["mlflow_username"], training["mlflow_password"])
        assert probe.status_code == 200, probe.text
        # a service's credential, read from the restored Vault with its own login, writes where it may
        # (serving: under its archive prefix) and is still refused what it may not (its grants came back)
        serving = _service_secret(after, "serving")
        own = after.s3_client(serving["s3_access_key"], serving["s3_secret_key"])
        own.put_object(Bucket=archive, Key=f"{UPLOADS_PREFIX}after-{attempt}.txt", Body=b"ok")
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
            own.delete_object(Bucket=archive, Key="empty")
        with pytest.raises(botocore.exceptions.ClientError, match="InvalidAccessKeyId"):
            after.s3_client(unrecorded["s3_access_key"], unrecorded["s3_secret_key"]).list_buckets()
        # the operator path that rotation takes (admin keys from Vault) works too
        admin = after.operator_client().secrets.kv.v2.read_secret_version(
            path=layout.secret_path(ENV, "objectstore"),
            mount_point=layout.KV_MOUNT,
            raise_on_deleted_version=True,
        )["data"]["data"]
        assert after.s3_client(admin["admin_access_key"], admin["admin_secret_key"]).list_buckets()["Buckets"]
        objects_before[archive] |= {
            f"{UPLOADS_PREFIX}after-{attempt}.txt": hashlib.sha256(b"ok").hexdigest()
        }  # kept by the next restore: a restore deletes no object written after the backup
