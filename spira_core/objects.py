"""The archive bucket as the burst path uses it: the intake puts a recording under its content hash, a
worker gets it back. Credentials and the bucket come from the service's Vault secret (a new secret version
gets a new client, as serving's archive does).

Reads take a lean path (`SignedGet`): one SigV4-signed GET on a pooled keep-alive connection of the
standard library's http.client, the body's
CRC32 checked against the store's `x-amz-checksum-crc32` as botocore does (zlib-ng's CRC32: 0.009 ms per
0.6 MB where the system zlib takes 0.12). A worker reads one recording per
job, and boto3's per-call machinery (event hooks, endpoint rules, parameter validation, response parsing)
cost 3.0–3.5 ms of CPU per 0.6 MB GET against 0.7–1.1 ms for this path (docs/performance.md). Writes
(the intake) stay on boto3."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
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
    """S3 GetObject (path-style) on a pool of keep-alive `http.client` connections, thread-safe.

    A GET that fails to connect, breaks off or answers 5xx is tried twice more, the second time after
    0.4 s (botocore's standard mode and urllib3's Retry(total=2, backoff_factor=0.2) do the same); then
    ObjectStoreError. A kept-alive connection the store has closed meanwhile is one of those tries. 404
    is ObjectMissing. https trusts `verify` (the platform CA's file, spira_core.tls.s3_verify) only, or the
    system's CAs without it. http.client rather than urllib3: the same read costs 0.43 ms of CPU against
    urllib3's 0.54 (0.68 MB objects, alternated in one process; docs/performance.md)."""

    try_delays_s = (0.0, 0.0, 0.4)  # the wait before each try

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
        parts = urlsplit(endpoint)
        self.host = parts.netloc
        self.base = parts.path.rstrip("/")
        self.access_key, self._secret_key, self.region = access_key, secret_key, region
        self.connect_timeout_s, self.read_timeout_s = connect_timeout_s, read_timeout_s
        self.max_connections = max_connections
        self._address = (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        self._tls = None
        if parts.scheme == "https":
            import ssl

            self._tls = ssl.create_default_context(cafile=verify)
        self._idle: list[http.client.HTTPConnection] = []  # kept alive, each after a whole body
        self._idle_lock = threading.Lock()
        self._day = ""
        self._signing_key = b""

    def _key_for(self, day: str) -> bytes:
        if day != self._day:  # one HMAC chain per day, not per request
            self._signing_key, self._day = sigv4_signing_key(self._secret_key, day, self.region), day
        return self._signing_key

    def _open(self) -> http.client.HTTPConnection:
        host, port = self._address
        if self._tls is not None:
            return http.client.HTTPSConnection(host, port, timeout=self.connect_timeout_s, context=self._tls)
        return http.client.HTTPConnection(host, port, timeout=self.connect_timeout_s)

    def _connection(self) -> http.client.HTTPConnection:
        with self._idle_lock:
            if self._idle:
                return self._idle.pop()
        connection = self._open()
        connection.connect()
        connection.sock.settimeout(self.read_timeout_s)
        return connection

    def _keep(self, connection: http.client.HTTPConnection) -> None:
        with self._idle_lock:
            if len(self._idle) < self.max_connections:
                self._idle.append(connection)
                return
        connection.close()

    def _fetch(self, path: str, headers: dict[str, str]) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One GET on a pooled connection: status, headers and the whole body."""
        connection = self._connection()
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except BaseException:
            connection.close()
            raise
        if response.will_close or response.status >= 500:  # a retry goes out on a fresh connection
            connection.close()
        else:
            self._keep(connection)
        return response.status, response.headers, body

    def get(self, bucket: str, key: str) -> bytes:
        from zlib_ng.zlib_ng import crc32  # the model image's `serving` extra; the intake never reads

        path = f"{self.base}/{quote(bucket, safe='')}/{quote(key, safe='/-_.~')}"
        failure = ""
        for delay in self.try_delays_s:
            if delay:
                time.sleep(delay)
            amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            headers = sigv4_get_headers(
                self.host, path, self.access_key, self._key_for(amz_date[:8]), self.region, amz_date
            )
            try:
                status, answer, body = self._fetch(path, headers)
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, cut short, TLS
                failure = repr(exc)
                continue
            if status >= 500:
                failure = f"HTTP {status} {body[:300].decode('utf-8', 'replace')}"
                continue
            break
        else:
            raise ObjectStoreError(f"get {key}: {failure}")
        if status == 404:
            raise ObjectMissing(key)
        if status != 200:
            raise ObjectStoreError(f"get {key}: HTTP {status} {body[:300].decode('utf-8', 'replace')}")
        expected = answer.get("x-amz-checksum-crc32")
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
