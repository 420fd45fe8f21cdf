"""Fakes for the operator-secrets ports: KV v2 store, object-store admin, consumer wait, MinIO's admin HTTP."""

from __future__ import annotations

import io
import json
import secrets as pysecrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import urllib3

from infra.environments import Grant
from infra.retention import BucketLifecycle
from spira.secrets.consumers import ConsumerWait
from spira.secrets.mlflow_users import MlflowUsers
from spira.secrets.objectstore import AccessKey, IamObjectStoreAdmin, ObjectStoreAdmin
from spira.secrets.store import CasConflict, SecretMeta, SecretStore, VaultUnavailable, Versioned


class Crash(Exception):
    """Stands for the process dying at a given point (kill -9, a lost laptop lid, a network cut)."""


class WallClock:
    """A settable UTC clock for journals and waits."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class InMemorySecretStore(SecretStore):
    """KV v2 semantics that rotation relies on: versions, check-and-set, custom metadata.

    `before_write(path)` runs before each write (to simulate a concurrent writer); `sealed` fails every
    call like a sealed Vault."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or WallClock()
        self.versions: dict[str, list[tuple[dict[str, Any], datetime]]] = {}
        self.custom: dict[str, dict[str, str]] = {}
        self.writes: list[tuple[str, int]] = []  # (path, cas) of every accepted write
        self.before_write: Callable[[str], None] = lambda _path: None
        self.sealed = False

    def _up(self) -> None:
        if self.sealed:
            raise VaultUnavailable("Vault at http://fake is sealed; unseal it (docs/runbooks/vault.md)")

    def read(self, path: str) -> Versioned | None:
        self._up()
        found = self.versions.get(path)
        return Versioned(dict(found[-1][0]), len(found)) if found else None

    def write(self, path: str, data: dict[str, Any], cas: int) -> int:
        self._up()
        self.before_write(path)
        current = len(self.versions.get(path, []))
        if cas != current:
            raise CasConflict(path, cas)
        self.versions.setdefault(path, []).append((json.loads(json.dumps(data)), self.clock()))
        self.writes.append((path, cas))
        return current + 1

    def metadata(self, path: str) -> SecretMeta | None:
        self._up()
        found = self.versions.get(path)
        if not found:
            return None
        return SecretMeta(len(found), found[-1][1], dict(self.custom.get(path, {})))

    def set_custom_metadata(self, path: str, custom: dict[str, str]) -> None:
        self._up()
        if path not in self.versions:
            raise VaultUnavailable(f"no secret at {path}")
        self.custom[path] = dict(custom)


class HvacKvOver:
    """The two hvac KV v2 calls `seed()` makes (its signature takes an hvac client), on an in-memory store."""

    def __init__(self, store: InMemorySecretStore) -> None:
        self.store = store
        self.secrets = self.kv = self.v2 = self

    def read_secret_version(self, path: str, mount_point: str, raise_on_deleted_version: bool) -> dict:
        import hvac.exceptions

        found = self.store.read(path)
        if found is None:
            raise hvac.exceptions.InvalidPath()
        return {"data": {"data": found.data, "metadata": {"version": found.version}}}

    def create_or_update_secret(self, path: str, secret: dict, cas: int, mount_point: str) -> dict:
        try:
            return {"data": {"version": self.store.write(path, secret, cas)}}
        except CasConflict as exc:
            import hvac.exceptions

            raise hvac.exceptions.InvalidRequest(
                "check-and-set parameter did not match the current version"
            ) from exc


class FakeObjectStoreAdmin(ObjectStoreAdmin):
    """Users, bucket grants and keys in memory; `events` records every change in order."""

    def __init__(self) -> None:
        self.buckets: set[str] = set()
        self.users: dict[str, list[Grant]] = {}
        self.keys: dict[str, dict[str, str]] = {}  # user -> access key -> secret key
        self.events: list[tuple[str, str]] = []
        self.lifecycles: dict[str, BucketLifecycle] = {}

    def ensure_bucket(self, bucket: str) -> None:
        self.buckets.add(bucket)

    def configure_bucket(self, lifecycle: BucketLifecycle) -> None:
        if lifecycle.bucket not in self.buckets:
            raise KeyError(f"no bucket {lifecycle.bucket}")
        self.lifecycles[lifecycle.bucket] = lifecycle

    def ensure_user(self, user: str, grants: tuple[Grant, ...]) -> None:
        self.users[user] = list(grants)
        self.keys.setdefault(user, {})

    def create_key(self, user: str) -> AccessKey:
        key = AccessKey("AK" + pysecrets.token_hex(8).upper(), pysecrets.token_urlsafe(24))
        self.keys.setdefault(user, {})[key.access_key] = key.secret_key
        self.events.append(("create", key.access_key))
        return key

    def delete_key(self, user: str, access_key: str) -> None:
        if access_key not in self.keys.get(user, {}):
            raise KeyError(f"no key {access_key} for {user}")
        del self.keys[user][access_key]
        self.events.append(("delete", access_key))

    def list_keys(self, user: str) -> list[str]:
        return list(self.keys.get(user, {}))

    def works(self, user: str, access_key: str, secret_key: str) -> bool:
        """Would the store accept this credential (as an S3 request signed with it would be)?"""
        return self.keys.get(user, {}).get(access_key) == secret_key


class CrashingAdminMixin:
    """Makes a real or fake adapter die mid-call: `crash_after_create` creates the key, then dies before
    the caller learns its id; `crash_before_delete` dies instead of deleting."""

    crash_after_create = False
    crash_before_delete = False

    def create_key(self, user: str) -> AccessKey:
        key = super().create_key(user)  # type: ignore[misc]
        if self.crash_after_create:
            self.crash_after_create = False
            raise Crash(f"died after creating {key.access_key}")
        return key

    def delete_key(self, user: str, access_key: str) -> None:
        if self.crash_before_delete:
            self.crash_before_delete = False
            raise Crash(f"died before deleting {access_key}")
        super().delete_key(user, access_key)  # type: ignore[misc]


class CrashingFakeAdmin(CrashingAdminMixin, FakeObjectStoreAdmin):
    pass


class CrashingIamAdmin(CrashingAdminMixin, IamObjectStoreAdmin):
    """The real SeaweedFS adapter, made to die at a chosen point."""


class RecordingWait(ConsumerWait):
    """Returns at once, recording what it was asked to wait for; `then` runs after (e.g. to note order)."""

    def __init__(self, then: Callable[[], None] = lambda: None) -> None:
        self.calls: list[tuple[str, int, datetime]] = []
        self.then = then

    def describe(self) -> str:
        return "recording wait"

    def wait(self, secret_ref: str, version: int, published_at: datetime) -> None:
        self.calls.append((secret_ref, version, published_at))
        self.then()


def crash_at(step: str) -> Callable[[str, dict], None]:
    """A rotation step hook that dies once, when `step` is reached."""
    fired = {"done": False}

    def hook(name: str, _journal: dict) -> None:
        if name == step and not fired["done"]:
            fired["done"] = True
            raise Crash(f"died at {step}")

    return hook


# ------------------------------------------------------------------------------- MinIO admin over HTTP
class FakeMinioAdminHttp(urllib3.PoolManager):
    """MinIO's admin API (/minio/admin/v3/...) in memory, at the HTTP layer MinioAdmin talks through.

    Decrypts request bodies and encrypts answers the way MinIO does (the admin secret as password), so
    the real SDK code path runs; records each request (method, command, query, decrypted body, headers)."""

    def __init__(self, admin_secret: str) -> None:
        super().__init__()
        self.admin_secret = admin_secret
        self.users: dict[str, dict[str, Any]] = {}
        self.policies: dict[str, dict] = {}
        self.service_accounts: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.list_format = "objects"  # or "strings", as older servers answer

    # helpers ---------------------------------------------------------------------------------------
    def _decrypt(self, body: bytes | None) -> dict:
        from minio.crypto import decrypt

        raw = urllib3.HTTPResponse(body=io.BytesIO(body or b""), preload_content=False)
        return json.loads(decrypt(raw, self.admin_secret))

    def _answer(self, status: int, payload: Any, encrypted: bool, preload: bool) -> urllib3.HTTPResponse:
        from minio.crypto import encrypt

        data = json.dumps(payload).encode() if payload is not None else b""
        if encrypted:
            data = encrypt(data, self.admin_secret)
        return urllib3.HTTPResponse(body=io.BytesIO(data), status=status, preload_content=preload)

    def _error(self, status: int, code: str, preload: bool) -> urllib3.HTTPResponse:
        return self._answer(status, {"Code": code, "Message": code}, False, preload)

    # the API ---------------------------------------------------------------------------------------
    def urlopen(self, method, url, body=None, headers=None, preload_content=True, **_kw):
        parts = urlsplit(url)
        command = parts.path.removeprefix("/minio/admin/v3/")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        record = {
            "method": method,
            "command": command,
            "query": query,
            "headers": dict(headers or {}),
            "body": None,
        }
        self.requests.append(record)
        p = preload_content
        if command == "user-info":
            user = self.users.get(query["accessKey"])
            if user is None:
                return self._error(404, "XMinioAdminNoSuchUser", p)
            return self._answer(
                200, {"status": user["status"], "policyName": ",".join(user["policies"])}, False, p
            )
        if command == "add-user":
            record["body"] = self._decrypt(body)
            self.users[query["accessKey"]] = {
                "secret": record["body"]["secretKey"],
                "status": "enabled",
                "policies": [],
            }
            return self._answer(200, None, False, p)
        if command == "add-canned-policy":
            record["body"] = json.loads(body)
            self.policies[query["name"]] = record["body"]
            return self._answer(200, None, False, p)
        if command == "idp/builtin/policy/attach":
            record["body"] = self._decrypt(body)
            user = self.users.get(record["body"].get("user", ""))
            if user is None:
                return self._error(404, "XMinioAdminNoSuchUser", p)
            new = [x for x in record["body"]["policies"] if x not in user["policies"]]
            if not new:
                return self._error(400, "XMinioAdminPolicyChangeAlreadyApplied", p)
            user["policies"] += new
            return self._answer(200, {"policiesAttached": new}, True, p)
        if command == "add-service-account":
            record["body"] = self._decrypt(body)
            target = record["body"].get("targetUser") or "ADMIN"
            if target != "ADMIN" and target not in self.users:
                return self._error(404, "XMinioAdminNoSuchUser", p)
            ak, sk = record["body"]["accessKey"], record["body"]["secretKey"]
            self.service_accounts[ak] = {"parent": target, "secret": sk}
            return self._answer(
                200,
                {"credentials": {"accessKey": ak, "secretKey": sk, "expiration": "1970-01-01T00:00:00Z"}},
                True,
                p,
            )
        if command == "list-service-accounts":
            user = query["user"]
            if user not in self.users:
                return self._error(404, "XMinioAdminNoSuchUser", p)
            keys = [ak for ak, sa in self.service_accounts.items() if sa["parent"] == user]
            accounts = (
                [{"parentUser": user, "accountStatus": "on", "accessKey": k} for k in keys]
                if self.list_format == "objects"
                else keys
            )
            return self._answer(200, {"accounts": accounts}, True, p)
        if command == "delete-service-account":
            if self.service_accounts.pop(query["accessKey"], None) is None:
                return self._error(404, "XMinioAdminServiceAccountNotFound", p)
            return self._answer(204, None, False, p)
        return self._error(400, "XMinioAdminUnknownCommand", p)

    def keys_of(self, user: str) -> dict[str, str]:
        return {ak: sa["secret"] for ak, sa in self.service_accounts.items() if sa["parent"] == user}


class FakeS3Buckets:
    """The S3 calls MinioObjectStoreAdmin makes as the admin (boto3's shapes): buckets, their versioning
    and lifecycle rules."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.versioning: dict[str, str] = {}
        self.lifecycle: dict[str, list[dict]] = {}

    def get_bucket_versioning(self, Bucket: str) -> dict:
        return {"Status": self.versioning[Bucket]} if Bucket in self.versioning else {}

    def put_bucket_versioning(self, Bucket: str, VersioningConfiguration: dict) -> dict:
        self.versioning[Bucket] = VersioningConfiguration["Status"]
        return {}

    def put_bucket_lifecycle_configuration(self, Bucket: str, LifecycleConfiguration: dict) -> dict:
        self.lifecycle[Bucket] = LifecycleConfiguration["Rules"]
        return {}

    def delete_bucket_lifecycle(self, Bucket: str) -> dict:
        self.lifecycle.pop(Bucket, None)
        return {}

    def list_buckets(self) -> dict:
        return {"Buckets": [{"Name": n} for n in self.names]}

    def create_bucket(self, Bucket: str) -> dict:
        self.names.append(Bucket)
        return {}


class FakeMlflowUsers(MlflowUsers):
    """MLflow's user store in memory: username -> password."""

    def __init__(self) -> None:
        self.users: dict[str, str] = {}

    def set_user(self, username: str, password: str) -> str:
        what = "reset" if username in self.users else "created"
        self.users[username] = password
        return what
