"""S3 artifact store (boto3): any S3 API (SeaweedFS locally, AWS S3 in clusters)."""

from __future__ import annotations

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from spira_core.tls import s3_verify
from training.ports import ArtifactMissing, ArtifactStore, ServiceUnavailable

_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


class S3ArtifactStore(ArtifactStore):
    def __init__(
        self, endpoint: str, access_key: str, secret_key: str, bucket: str, prefix: str = "pipeline"
    ) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        # few, short retries: an unreachable store should fail the stage in seconds with a clear message
        config = Config(
            connect_timeout=3,
            read_timeout=30,
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": "path"},
        )
        self._s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            verify=s3_verify(endpoint),
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            config=config,
        )
        self._bucket_ready = False

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, action: str, key: str, exc: Exception) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"S3 at {self.endpoint} (bucket {self.bucket}): {action} {key} failed: {exc}"
        )

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _MISSING_CODES | {"NoSuchBucket"}:
                raise self._fail("checking bucket", self.bucket, exc) from exc
            try:
                self._s3.create_bucket(Bucket=self.bucket)
            except (ClientError, BotoCoreError) as create_exc:
                raise self._fail("creating bucket", self.bucket, create_exc) from create_exc
        except BotoCoreError as exc:
            raise self._fail("reaching", self.bucket, exc) from exc
        self._bucket_ready = True

    def put(self, key: str, data: bytes) -> None:
        self._ensure_bucket()
        try:
            self._s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("writing", key, exc) from exc

    def get(self, key: str) -> bytes:
        self._ensure_bucket()
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                raise ArtifactMissing(key) from exc
            raise self._fail("reading", key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("reading", key, exc) from exc

    def exists(self, key: str) -> bool:
        self._ensure_bucket()
        try:
            self._s3.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                return False
            raise self._fail("checking", key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("checking", key, exc) from exc
