"""The archive bucket as the burst path uses it: the intake puts a recording under its content hash, a
worker gets it back. Credentials and the bucket come from the service's Vault secret (a new secret version
gets a new client, as serving's archive does).

Reads take a lean path (`SignedGet`): one SigV4-signed GET on a pooled keep-alive connection, the body's
CRC32 checked against the store's `x-amz-checksum-crc32` as botocore does (zlib-ng's CRC32: 0.009 ms per
0.6 MB where the system zlib takes 0.12). A worker reads one recording per
job, and boto3's per-call machinery (event hooks, endpoint rules, parameter validation, response parsing)
cost 3.0–3.5 ms of CPU per 0.6 MB GET against 0.7–1.1 ms for this path (docs/performance.md). Writes
(the intake) stay on boto3."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from abc import ABC, abstractmethod
from urllib.parse import quote, urlsplit

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


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # a GET's payload: its hash is signed, as botocore does
_SIGNED_HEADERS = "host;x-amz-content-sha256;x-amz-date"


def sigv4_get_headers(
    host: str, path: str, access_key: str, signing_key: bytes, region: str, amz_date: str
) -> dict[str, str]:
    """The headers of a SigV4-signed S3 GET of `path` (already URI-encoded), no query, empty payload."""
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    canonical = (
        f"GET\n{path}\n\nhost:{host}\nx-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:{amz_date}\n\n"
        f"{_SIGNED_HEADERS}\n{EMPTY_SHA256}"
    )
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-date": amz_date,
        "x-amz-content-sha256": EMPTY_SHA256,
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={_SIGNED_HEADERS}, "
            f"Signature={signature}"
        ),
    }


def sigv4_signing_key(secret_key: str, day: str, region: str) -> bytes:
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class SignedGet:
    """S3 GetObject (path-style) on a urllib3 pool of keep-alive connections, thread-safe.

    Transient failures (connection errors, 5xx) are retried twice with a short backoff like botocore's
    standard mode; then ObjectStoreError. 404 is ObjectMissing. https trusts `verify` (the platform CA's
    file, spira_core.tls.s3_verify) only."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        verify: str | None = None,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 15.0,
        max_connections: int = 32,
    ) -> None:
        import urllib3

        parts = urlsplit(endpoint)
        self.host = parts.netloc
        self.base = parts.path.rstrip("/")
        self.access_key, self._secret_key, self.region = access_key, secret_key, region
        tls = {"cert_reqs": "CERT_REQUIRED", "ca_certs": verify} if verify else {}
        self.pool = urllib3.connection_from_url(
            endpoint,
            maxsize=max_connections,
            block=False,
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
            retries=urllib3.Retry(
                total=2,
                backoff_factor=0.2,
                status_forcelist=(500, 502, 503, 504),
                allowed_methods=("GET",),
                raise_on_status=False,
            ),
            **tls,
        )
        self._day = ""
        self._signing_key = b""

    def _key_for(self, day: str) -> bytes:
        if day != self._day:  # one HMAC chain per day, not per request
            self._signing_key, self._day = sigv4_signing_key(self._secret_key, day, self.region), day
        return self._signing_key

    def get(self, bucket: str, key: str) -> bytes:
        import urllib3
        from zlib_ng.zlib_ng import crc32  # the model image's `serving` extra; the intake never reads

        path = f"{self.base}/{quote(bucket, safe='')}/{quote(key, safe='/-_.~')}"
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers = sigv4_get_headers(
            self.host, path, self.access_key, self._key_for(amz_date[:8]), self.region, amz_date
        )
        try:
            response = self.pool.request("GET", path, headers=headers, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:  # connection, TLS, timeout, a short body
            raise ObjectStoreError(f"get {key}: {exc!r}") from exc
        if response.status == 404:
            raise ObjectMissing(key)
        if response.status != 200:
            detail = response.data[:300].decode("utf-8", "replace")
            raise ObjectStoreError(f"get {key}: HTTP {response.status} {detail}")
        body = response.data
        expected = response.headers.get("x-amz-checksum-crc32")
        # "<crc>-<parts>" is a multipart upload's composite, not the body's CRC (botocore skips it too)
        if expected is not None and "-" not in expected:
            got = base64.b64encode(crc32(body).to_bytes(4, "big")).decode()
            if got != expected:
                raise ObjectStoreError(f"get {key}: CRC32 {got} != the store's {expected}")
        return body


class S3Recordings(Recordings):
    def __init__(self, secret: CachedSecret) -> None:
        self.secret = secret
        self._client = None
        self._version: int | None = None
        self._reader: SignedGet | None = None
        self._reader_version: int | None = None
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

    def _reader_for_current_secret(self) -> tuple[SignedGet, str]:
        current = self.secret.get_version()
        with self._lock:
            if self._reader is None or current.version != self._reader_version:
                endpoint = current.data["s3_endpoint"]
                self._reader = SignedGet(
                    endpoint,
                    current.data["s3_access_key"],
                    current.data["s3_secret_key"],
                    verify=s3_verify(endpoint),
                )
                self._reader_version = current.version
            return self._reader, current.data["archive_bucket"]

    def get(self, key: str) -> bytes:
        reader, bucket = self._reader_for_current_secret()
        return reader.get(bucket, key)
