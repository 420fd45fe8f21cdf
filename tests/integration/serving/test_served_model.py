"""`bentoml serve` of a real trained model on the real local stack: parity, archive, secrets at run time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

from infra.vault import layout
from spira.stack import StackInfo
from spira.stack.seaweed import REGION, S3_CONFIG
from tests.contract.test_http_contract import _clip, _get, _post
from tests.fixtures.model import (
    REPO,
    RegisteredModel,
    ServedModel,
    get_json,
    second_server_home,
    start_server,
    stop_server,
)
from tests.fixtures.vault_proxy import VaultProxy

pytestmark = pytest.mark.integration

PARITY_CASES = [(16_000, 1), (16_000, 2), (44_100, 1), (44_100, 2), (48_000, 1), (48_000, 2)]


def _metric(url: str, name: str, labels: str = "") -> float | None:
    text = _get(f"{url}/metrics")[1].decode()
    for line in text.splitlines():
        if line.startswith(name) and labels in line and not line.startswith("#"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_served_answers_equal_spira_predict_within_1e_6(
    served_model: ServedModel, registered_model: RegisteredModel, tmp_path: Path
) -> None:
    files = []
    for rate, channels in PARITY_CASES:
        f = tmp_path / f"clip-{rate}-{channels}.wav"
        f.write_bytes(_clip(6.3, rate, channels))
        files.append(f)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": registered_model.tracking_uri}
    out = subprocess.run(
        [sys.executable, "-m", "spira.cli", "predict", "--model", registered_model.version, *map(str, files)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    offline = {Path(r["file"]).name: r for r in map(json.loads, out.stdout.splitlines())}
    for f in files:
        status, served = _post(f"{served_model.url}/predict", [("audio", f.name, f.read_bytes())])
        assert status == 200
        assert abs(served["probability"] - offline[f.name]["probability"]) < 1e-6, f.name
        assert {k: v for k, v in served.items() if k != "probability"} == {
            k: v for k, v in offline[f.name].items() if k not in ("probability", "file")
        }


def _archived_keys(s3, bucket: str) -> set[str]:
    """Every archived upload key (paginated: other tests put many objects in the same bucket)."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="uploads/")
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def test_uploads_and_answers_are_archived_to_the_serving_bucket(
    served_model: ServedModel, local_stack: StackInfo
) -> None:
    secret = local_stack.vault_client().secrets.kv.v2.read_secret_version(
        path=layout.secret_path("local", "serving"), mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    s3 = local_stack.s3_client()
    bucket = secret["archive_bucket"]
    # Earlier tests' uploads (the same clips) are archived in the background by the uploader process: ours
    # is told apart by its bytes, its last sample made unique to this run.
    audio = bytearray(_clip(4.0, 48_000))
    audio[-2:] = os.urandom(2)
    before = _archived_keys(s3, bucket)
    assert _post(f"{served_model.url}/predict", [("audio", "p.wav", bytes(audio))])[0] == 200
    deadline = time.monotonic() + 30
    ours: str | None = None
    seen: set[str] = set()
    while time.monotonic() < deadline and ours is None:
        for key in sorted(_archived_keys(s3, bucket) - before - seen):
            seen.add(key)
            if key.endswith(".audio") and s3.get_object(Bucket=bucket, Key=key)["Body"].read() == audio:
                ours = key.removesuffix(".audio")
        time.sleep(0.5)
    assert ours is not None, "the upload was not archived within 30 s"
    while time.monotonic() < deadline and f"{ours}.json" not in _archived_keys(s3, bucket):
        time.sleep(0.5)
    record = json.loads(s3.get_object(Bucket=bucket, Key=f"{ours}.json")["Body"].read())
    assert record["answer"]["model_version"] == served_model.version


def test_an_operator_rotation_during_a_locust_run_fails_no_request(
    served_model: ServedModel, local_stack: StackInfo, tmp_path: Path
) -> None:
    """`spira secrets rotate` while the gate's Locust load runs: 0 failed requests, the new version in use
    by the same process, the old key refused by the object store afterwards, the reads in the audit log."""
    vault = local_stack.vault_client()
    path = layout.secret_path("local", "serving")
    before = vault.secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", raise_on_deleted_version=True
    )
    old, version = before["data"]["data"], before["data"]["metadata"]["version"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "SPIRA_HOME": str(local_stack.home)}
    gate_out = tmp_path / "gate"
    locust = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spira.cli",
            "gate",
            "--url",
            served_model.url,
            "--thresholds",
            "local",
            "--expect-model-version",
            served_model.version,
            "--users",
            "3",
            "--duration",
            "30",
            "--out",
            str(gate_out),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(8)  # rotate in the middle of the load
        rotated = subprocess.run(
            [
                sys.executable,
                "-m",
                "spira.cli",
                "secrets",
                "rotate",
                "--env",
                "local",
                "--service",
                "serving",
                "--key",
                "s3",
                "--consumer",
                f"{served_model.url}/metrics",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert rotated.returncode == 0, rotated.stdout[-2000:] + rotated.stderr[-2000:]
    finally:
        gate_output = locust.communicate(timeout=240)[0]
    verdict = json.loads((gate_out / "verdict.json").read_text())
    errors = next(c for c in verdict["verdict"]["checks"] if c["slo"] == "error_ratio")
    assert locust.returncode == 0, gate_output[-3000:]
    failures = (gate_out / "locust_failures.csv").read_text()
    counters = (gate_out / "counters.json").read_text()
    assert errors["measured"] == 0, f"{errors}\n{failures}\n{counters}\n{gate_output[-3000:]}"
    assert _metric(served_model.url, "spira_secret_version") == version + 1
    os.killpg(served_model.pid, 0)  # the same server process, never restarted
    stale = boto3.client(
        "s3",
        endpoint_url=local_stack.s3_endpoint,
        region_name=REGION,
        config=S3_CONFIG,
        aws_access_key_id=old["s3_access_key"],
        aws_secret_access_key=old["s3_secret_key"],
    )
    with pytest.raises(botocore.exceptions.ClientError):
        stale.put_object(Bucket=old["archive_bucket"], Key="after-rotation", Body=b"x")
    audit = (local_stack.home / "vault" / layout.AUDIT_LOG_FILE).read_text()
    assert f"secret/data/{path}" in audit


def test_a_vault_outage_keeps_serving_with_the_last_good_secret_and_says_so(
    local_stack: StackInfo, registered_model: RegisteredModel, served_model: ServedModel
) -> None:
    vault_port = int(local_stack.vault_addr.rsplit(":", 1)[1])
    proxy = VaultProxy(vault_port)
    home = second_server_home(served_model)
    served = start_server(
        local_stack,
        registered_model,
        home,
        extra_env={
            "VAULT_ADDR": proxy.addr,
            "VAULT_SECRET_TTL_S": "1",
            "VAULT_GRACE_S": "3",
        },
    )
    try:
        proxy.cut()
        time.sleep(1.5)
        assert _post(f"{served.url}/predict", [("audio", "a.wav", _clip(4.0, 16_000))])[0] == 200
        assert _get(f"{served.url}/readyz")[0] == 200  # within the grace period
        info = get_json(f"{served.url}/info")["readiness"]["secret"]
        assert info["stale"] and "unreachable" in info["last_error"]
        assert _metric(served.url, "spira_secret_stale") == 1.0
        time.sleep(3.5)  # past TTL + grace
        assert _get(f"{served.url}/readyz")[0] == 503
        assert (
            _post(f"{served.url}/predict", [("audio", "a.wav", _clip(4.0, 16_000))])[0] == 200
        )  # still answers
        proxy.restore()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _get(f"{served.url}/readyz")[0] != 200:
            time.sleep(0.3)
        assert _get(f"{served.url}/readyz")[0] == 200
    finally:
        stop_server(served)
        proxy.close()
