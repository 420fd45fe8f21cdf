"""Shared by the secrets integration tests: the wiring the CLI uses, S3 checks and the audit log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import botocore.exceptions

from infra.vault import layout
from serving.archive import UPLOADS_PREFIX
from spira.secrets.wiring import Target
from spira.stack import StackInfo

REPO = Path(__file__).resolve().parents[3]


def local_target(info: StackInfo) -> Target:
    """What `spira secrets --env local` builds, pointed at the test's stack."""
    return Target("local", environ={"SPIRA_HOME": str(info.home)})


def s3_put_works(
    info: StackInfo, access_key: str, secret_key: str, bucket: str, key: str = f"{UPLOADS_PREFIX}probe"
) -> bool:
    """Does this key still work? (Probed under serving's archive prefix: the only place its key may write.)"""
    try:
        info.s3_client(access_key, secret_key).put_object(Bucket=bucket, Key=key, Body=b"probe")
    except botocore.exceptions.ClientError as exc:
        code = exc.response["Error"]["Code"]
        assert code in {"InvalidAccessKeyId", "AccessDenied", "SignatureDoesNotMatch", "403"}, code
        return False
    return True


def audit_reads(info: StackInfo, service: str, since: datetime) -> list[dict]:
    """Audit-log responses to `service`'s role reading its own secret, at or after `since`."""
    path = f"{layout.KV_MOUNT}/data/{layout.secret_path(info.env_name, service)}"
    role = layout.role_name(info.env_name, service)
    out = []
    for line in (info.home / "vault" / layout.AUDIT_LOG_FILE).read_text().splitlines():
        entry = json.loads(line)
        req, auth = entry.get("request") or {}, entry.get("auth") or {}
        if (
            entry.get("type") == "response"
            and req.get("path") == path
            and req.get("operation") == "read"
            and (auth.get("metadata") or {}).get("role") == role
            and datetime.fromisoformat(entry["time"][:26].rstrip("Z") + "+00:00") >= since
        ):
            out.append(entry)
    return out


def spira(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "spira.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        timeout=timeout,
    )
