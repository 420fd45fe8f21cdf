"""The run's lease on its S3 key (spira_core.run_lease), kept in its own bucket while the run lasts.

Written at start, refreshed every HEARTBEAT_S from a daemon thread, marked ended at the end: `spira secrets
rotate --service training` waits for the runs that hold an older key before revoking it. A lease that
cannot be written never fails the run (the run would find out about S3 itself); it is said on stderr.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import uuid
from datetime import UTC, datetime
from types import TracebackType

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from spira_core.run_lease import HEARTBEAT_S, RunLease, lease_key
from spira_core.tls import s3_verify


class S3RunLease:
    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secret_version: int,
        service: str = "training",
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.bucket = bucket
        self.heartbeat_s = heartbeat_s
        now = datetime.now(UTC)
        holder = f"{os.environ.get('HOSTNAME') or socket.gethostname()} pid {os.getpid()}"
        self.lease = RunLease(uuid.uuid4().hex, service, secret_version, now, now, holder)
        self.key = lease_key(service, self.lease.run_id)
        self._s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            verify=s3_verify(endpoint),
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            config=Config(
                connect_timeout=3,
                retries={"max_attempts": 2, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _put(self, ended: bool = False) -> None:
        self.lease = self.lease.beat(datetime.now(UTC), ended=ended)
        try:
            self._s3.put_object(Bucket=self.bucket, Key=self.key, Body=self.lease.to_json())
        except (BotoCoreError, ClientError) as exc:
            print(f"warning: run lease s3://{self.bucket}/{self.key} not written: {exc}", file=sys.stderr)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self._put()

    def __enter__(self) -> S3RunLease:
        self._put()
        self._thread = threading.Thread(target=self._beat, name="run-lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.heartbeat_s + 5)
        self._put(ended=True)
