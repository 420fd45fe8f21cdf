"""The archive bucket as the burst path uses it: the intake puts a recording under its content hash, a
worker gets it back. Credentials and the bucket come from the service's Vault secret (a new secret version
gets a new client, as serving's archive does)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

from spira_core.tls import s3_verify
from spira_core.vault import CachedSecret


class ObjectMissing(LookupError):
    """No object under the key (a job whose recording was never stored, or was purged)."""


class ObjectStoreError(RuntimeError):
    """The object store did not answer or refused (retry later)."""


class Recordings(ABC):
    @abstractmethod
    def put(self, key: str, body: bytes) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes: ...


class S3Recordings(Recordings):
    def __init__(self, secret: CachedSecret) -> None:
        self.secret = secret
        self._client = None
        self._version: int | None = None
        self._lock = threading.Lock()

    def _client_for_current_secret(self):
        current = self.secret.get_version()
        with self._lock:
            if self._client is None or current.version != self._version:
                import boto3
                from botocore.config import Config

                self._client = boto3.client(
                    "s3",
                    endpoint_url=current.data["s3_endpoint"],
                    verify=s3_verify(current.data["s3_endpoint"]),
                    region_name="us-east-1",
                    aws_access_key_id=current.data["s3_access_key"],
                    aws_secret_access_key=current.data["s3_secret_key"],
                    config=Config(
                        signature_version="s3v4",
                        s3={"addressing_style": "path"},
                        retries={"max_attempts": 3, "mode": "standard"},
                        connect_timeout=3,
                        read_timeout=15,
                        max_pool_connections=32,
                    ),
                )
                self._version = current.version
            return self._client, current.data["archive_bucket"]

    def put(self, key: str, body: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client, bucket = self._client_for_current_secret()
        try:
            client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/octet-stream")
        except (BotoCoreError, ClientError) as exc:
            raise ObjectStoreError(f"put {key}: {exc}") from exc

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        client, bucket = self._client_for_current_secret()
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ObjectMissing(key) from exc
            raise ObjectStoreError(f"get {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise ObjectStoreError(f"get {key}: {exc}") from exc
