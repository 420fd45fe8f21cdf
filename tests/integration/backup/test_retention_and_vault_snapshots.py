"""Backups and retention on the real local stack (OpenBao, SeaweedFS 4.48), each workload with its own
credentials from Vault:

- the buckets carry the declared versioning and lifecycle rules after seeding;
- the archive purge deletes patients' uploads older than the retention period and keeps younger ones,
  with a key that lists and deletes under uploads/ only and never reads an upload; `spira archive purge`
  runs as that workload;
- the Vault snapshot role takes a real raft snapshot and can do nothing else in Vault, and its key only
  adds objects under the backups bucket's vault/;
- the clusters' CronJobs' Vault container (script and env from the Pulumi component) runs against the local
  stack and leaves the job's own key, and for the backup a real snapshot, for the S3 container.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import botocore.exceptions
import pytest
import requests

from infra.components.backups import CREDS_DIR, OUT_DIR, TOKEN_DIR, cron_job_manifest
from infra.retention import retention
from infra.vault import layout
from spira.archive.purge import S3Archive, purge
from spira.stack import StackInfo
from spira_core.vault.client import VaultSecretReader
from spira_core.vault.settings import VaultSettings
from tests.fixtures.object_store_access import denied, own_client

pytestmark = pytest.mark.integration
ENV = "local"
GZIP = b"\x1f\x8b"  # a raft snapshot is a gzipped archive


def put_upload(info: StackInfo, bucket: str, prefix: str = "uploads/") -> tuple[str, object]:
    """A patient upload written by the operator; (key, LastModified as the store recorded it)."""
    key = f"{prefix}{uuid.uuid4().hex}.audio"
    admin = info.s3_client()
    admin.put_object(Bucket=bucket, Key=key, Body=b"patient voice")
    return key, admin.head_object(Bucket=bucket, Key=key)["LastModified"]


def exists(info: StackInfo, bucket: str, key: str) -> bool:
    try:
        info.s3_client().head_object(Bucket=bucket, Key=key)
        return True
    except botocore.exceptions.ClientError:
        return False


def test_seeding_leaves_every_bucket_with_its_declared_versioning_and_lifecycle(
    local_stack: StackInfo,
) -> None:
    admin = local_stack.s3_client()
    for declared in retention().buckets(ENV):
        status = admin.get_bucket_versioning(Bucket=declared.bucket).get("Status")
        assert (status == "Enabled") == declared.versioned, declared.bucket
        rules = admin.get_bucket_lifecycle_configuration(Bucket=declared.bucket)["Rules"]
        assert sorted(rules, key=lambda r: r["ID"]) == sorted(declared.rules(), key=lambda r: r["ID"])


def test_the_purge_deletes_uploads_older_than_the_period_and_keeps_younger_ones(
    local_stack: StackInfo,
) -> None:
    s3, secret = own_client(local_stack, "archive-purge")
    bucket = secret["archive_bucket"]
    old, old_at = put_upload(local_stack, bucket)
    time.sleep(1.1)  # S3 times have one-second resolution
    young, young_at = put_upload(local_stack, bucket)
    gate_upload, _ = put_upload(local_stack, bucket, "synthetic/")
    assert young_at > old_at
    expiry = retention().patient_audio(ENV)
    # The moment the older upload reaches the declared period: it must go, the younger must stay.
    now = old_at + timedelta(days=expiry.days)
    report = purge(S3Archive(s3, bucket), expiry, now)
    assert old in report.deleted and young not in report.deleted and not report.failed
    assert not exists(local_stack, bucket, old)
    assert exists(local_stack, bucket, young) and exists(local_stack, bucket, gate_upload)
    # One second before the younger one's period is up, it still stays.
    report = purge(S3Archive(s3, bucket), expiry, young_at + timedelta(days=expiry.days, seconds=-1))
    assert young not in report.deleted and exists(local_stack, bucket, young)


def test_the_purge_key_lists_and_deletes_under_uploads_only_and_never_reads_an_upload(
    local_stack: StackInfo,
) -> None:
    s3, secret = own_client(local_stack, "archive-purge")
    bucket = secret["archive_bucket"]
    upload, _ = put_upload(local_stack, bucket)
    gate_upload, _ = put_upload(local_stack, bucket, "synthetic/")
    assert upload in {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="uploads/")["Contents"]}
    assert denied(lambda: s3.list_objects_v2(Bucket=bucket))
    assert denied(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="synthetic/"))
    assert denied(lambda: s3.get_object(Bucket=bucket, Key=upload))
    assert denied(lambda: s3.head_object(Bucket=bucket, Key=upload))
    assert denied(lambda: s3.put_object(Bucket=bucket, Key=f"uploads/{uuid.uuid4().hex}", Body=b"x"))
    assert denied(lambda: s3.delete_object(Bucket=bucket, Key=gate_upload))
    batch = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": gate_upload}]})
    assert [e["Key"] for e in batch.get("Errors", [])] == [gate_upload]
    assert exists(local_stack, bucket, gate_upload)
    features = local_stack.s3_client()  # and nothing in another bucket
    other = own_client(local_stack, "training")[1]["features_bucket"]
    assert features.head_bucket(Bucket=other) and denied(lambda: s3.list_objects_v2(Bucket=other))


def test_spira_archive_purge_runs_as_the_purge_workload_and_keeps_uploads_younger_than_the_period(
    local_stack: StackInfo,
) -> None:
    bucket = own_client(local_stack, "archive-purge")[1]["archive_bucket"]
    young, _ = put_upload(local_stack, bucket)
    # Exactly what the CronJob's pod carries: the three VAULT_* (plus the local stand-in for its token).
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    env |= {"SPIRA_HOME": str(local_stack.home), **local_stack.service_env("archive-purge")}
    spira = [sys.executable, "-m", "spira.cli"]
    for args in (["--dry-run"], []):
        out = subprocess.run(
            [*spira, "archive", "purge", "--env", ENV, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        days = retention().patient_audio(ENV).days
        assert f"{bucket}/uploads/: retention {days} days" in out.stderr
        assert young not in out.stdout and exists(local_stack, bucket, young)
    refused = subprocess.run(
        [*spira, "archive", "purge", "--env", "staging"],
        env={k: v for k, v in env.items() if not k.startswith("VAULT_")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1 and "no Vault credentials" in refused.stderr
    wrong = subprocess.run(
        [*spira, "archive", "purge", "--env", "production"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert wrong.returncode == 1 and "secret/spira/production/archive-purge" in wrong.stderr


def backup_login(info: StackInfo) -> tuple[VaultSecretReader, dict[str, str]]:
    settings = VaultSettings.from_env(info.service_env("vault-backup"))
    reader = VaultSecretReader(settings, settings.token_source())
    return reader, reader.read().data


def test_the_vault_backup_role_takes_a_raft_snapshot_and_can_do_nothing_else(local_stack: StackInfo) -> None:
    reader, _ = backup_login(local_stack)
    headers = {"X-Vault-Token": str(reader.client_token)}

    def call(method: str, path: str, **kw) -> requests.Response:
        url = f"{local_stack.vault_addr}/v1/{path}"
        return requests.request(
            method, url, headers=headers, verify=str(local_stack.vault_ca), timeout=30, **kw
        )

    snap = call("GET", "sys/storage/raft/snapshot")
    assert snap.status_code == 200 and snap.content[:2] == GZIP and len(snap.content) > 1000
    assert call("POST", "sys/storage/raft/snapshot-force", data=snap.content).status_code == 403
    assert call("GET", "sys/storage/raft/configuration").status_code == 403
    for service in ("serving", "objectstore", "archive-purge"):
        assert call("GET", f"secret/data/{layout.secret_path(ENV, service)}").status_code == 403, service
    assert call("GET", "sys/policies/acl").status_code == 403


def test_the_vault_backup_key_only_adds_snapshots_under_the_backups_vault_prefix(
    local_stack: StackInfo, tmp_path: Path
) -> None:
    s3, secret = own_client(local_stack, "vault-backup")
    bucket = secret["backups_bucket"]
    key = f"vault/{uuid.uuid4().hex}.snap"
    s3.put_object(Bucket=bucket, Key=key, Body=GZIP + b"snapshot")
    assert exists(local_stack, bucket, key)
    assert denied(lambda: s3.get_object(Bucket=bucket, Key=key))
    assert denied(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="vault/"))
    assert denied(lambda: s3.delete_object(Bucket=bucket, Key=key))
    assert denied(lambda: s3.put_object(Bucket=bucket, Key="elsewhere.snap", Body=b"x"))
    archive = own_client(local_stack, "serving")[1]["archive_bucket"]
    assert denied(lambda: s3.put_object(Bucket=archive, Key=f"uploads/{uuid.uuid4().hex}", Body=b"x"))


def run_cron_job_login(
    info: StackInfo, job: str, tmp: Path
) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """The Vault container of the rendered CronJob, its script and env as the plan has them, run by `sh`
    against the local stack: OpenBao's CLI stands in for `vault` (same commands, reads VAULT_*), the pod's
    mounts become folders (the projected token minted by the stack's signer for the job's service account,
    Vault's CA beside it), VAULT_ADDR is the local Vault's."""
    manifest = cron_job_manifest(job, ENV)
    (container,) = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"]
    token_dir, creds, out, shim = tmp / "token", tmp / "creds", tmp / "out", tmp / "bin"
    for d in (token_dir, creds, shim):
        d.mkdir()
    (token_dir / "token").write_text(info.service_jwt(job))
    (token_dir / "ca.crt").write_bytes(Path(info.vault_ca).read_bytes())
    (shim / "vault").symlink_to(Path(sys.executable).parent / "bao")
    script = container["command"][-1]
    for pod_path, here in ((TOKEN_DIR, token_dir), (CREDS_DIR, creds), (OUT_DIR, out)):
        script = script.replace(pod_path, str(here))
    env = {e["name"]: e["value"] for e in container["env"]} | {
        "VAULT_ADDR": info.vault_addr,
        "PATH": f"{shim}:/usr/bin:/bin",
        "HOME": str(tmp),
    }
    done = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    return done, creds / "mc" / "config.json", out


def test_the_backup_cron_jobs_vault_container_logs_in_as_its_role_and_saves_a_snapshot(
    local_stack: StackInfo, tmp_path: Path
) -> None:
    done, config, out = run_cron_job_login(local_stack, "vault-backup", tmp_path)
    assert done.returncode == 0, done.stderr
    (snap,) = out.glob("*.snap")
    assert snap.read_bytes()[:2] == GZIP
    store = json.loads(config.read_text())["aliases"]["store"]
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    # What the mc container then does with that key (`mc cp` is a PutObject), here through boto3.
    s3 = local_stack.s3_client(store["accessKey"], store["secretKey"])
    bucket = own_client(local_stack, "vault-backup")[1]["backups_bucket"]
    s3.put_object(Bucket=bucket, Key=f"vault/{snap.name}", Body=snap.read_bytes())
    assert exists(local_stack, bucket, f"vault/{snap.name}")


def test_the_purge_cron_jobs_vault_container_hands_on_only_the_purge_key(
    local_stack: StackInfo, tmp_path: Path
) -> None:
    done, config, out = run_cron_job_login(local_stack, "archive-purge", tmp_path)
    assert done.returncode == 0, done.stderr
    assert not out.exists(), "the purge takes no snapshot"
    store = json.loads(config.read_text())["aliases"]["store"]
    assert store["accessKey"] == own_client(local_stack, "archive-purge")[1]["s3_access_key"]
