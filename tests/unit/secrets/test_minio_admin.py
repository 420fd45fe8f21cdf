"""The MinIO adapter, run through the real `minio` SDK against MinIO's admin protocol at the HTTP layer.

No MinIO server can run here (no wheel, no package; community edition archived in 2025), so a fake
urllib3 pool answers /minio/admin/v3/* as MinIO does: bodies encrypted with the admin secret (argon2id +
AEAD, the SDK's own crypto), errors as madmin JSON codes. Argon2id at MinIO's cost (64 MiB per message)
takes about a second a call on this machine, so all but one test swap in a cheap key derivation on both
sides; the framing and AEAD stay the SDK's. The request shapes checked below (commands,
methods, query, body fields, SigV4 with the admin key) are what a real server would receive.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from infra.environments import declared
from infra.vault import layout
from spira.secrets.minio_admin import MinioObjectStoreAdmin, minio_admin
from spira.secrets.objectstore import bucket_policy
from spira.secrets.rotation import rotate
from spira.secrets.seed import EnvironmentEndpoints, seed
from tests.fakes.secrets import (
    FakeMinioAdminHttp,
    FakeS3Buckets,
    HvacKvOver,
    InMemorySecretStore,
    RecordingWait,
    WallClock,
)

ADMIN_AK, ADMIN_SK = "spira-root-ak", "spira-root-secret-0123456789"
USER = "spira-production-serving"
GRANTS = declared().object_store_grants("production", "serving")


@pytest.fixture
def http(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> FakeMinioAdminHttp:
    if "minios_real_key_derivation" not in request.node.name:
        import minio.crypto

        monkeypatch.setattr(
            minio.crypto, "_generate_key", lambda secret, salt: hashlib.sha256(secret + salt).digest()
        )
    return FakeMinioAdminHttp(ADMIN_SK)


@pytest.fixture
def admin(http: FakeMinioAdminHttp) -> MinioObjectStoreAdmin:
    return MinioObjectStoreAdmin(
        minio_admin("https://minio.objectstore.svc:9000", ADMIN_AK, ADMIN_SK, http), FakeS3Buckets()
    )


def test_requests_go_to_the_admin_api_over_tls_signed_with_the_admin_key(admin, http) -> None:
    admin.list_keys(USER)
    req = http.requests[-1]
    assert req["command"] == "list-service-accounts" and req["query"] == {"user": USER}
    auth = req["headers"]["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=" + ADMIN_AK + "/"), auth
    assert req["headers"]["Host"] == "minio.objectstore.svc:9000"


def test_ensure_user_creates_the_user_and_grants_exactly_its_declared_actions_idempotently(
    admin, http
) -> None:
    admin.ensure_user(USER, GRANTS)
    admin.ensure_user(USER, GRANTS)  # already there, policy already attached
    assert set(http.users) == {USER}
    assert http.policies[f"{USER}-buckets"] == json.loads(bucket_policy(GRANTS))
    assert http.users[USER]["policies"] == [f"{USER}-buckets"]
    assert [r["command"] for r in http.requests].count("add-user") == 1


def test_a_key_is_a_service_account_of_the_service_user_not_of_the_admin_with_minios_real_key_derivation(
    admin, http
) -> None:
    admin.ensure_user(USER, GRANTS)
    key = admin.create_key(USER)
    sent = next(r for r in http.requests if r["command"] == "add-service-account")
    assert sent["method"] == "PUT" and sent["body"]["targetUser"] == USER
    assert (sent["body"]["accessKey"], sent["body"]["secretKey"]) == (key.access_key, key.secret_key)
    assert len(key.access_key) == 20 and len(key.secret_key) == 40
    assert http.keys_of(USER) == {key.access_key: key.secret_key}


@pytest.mark.parametrize("fmt", ["objects", "strings"])
def test_keys_are_listed_from_new_and_old_server_answers(admin, http, fmt) -> None:
    http.list_format = fmt
    admin.ensure_user(USER, GRANTS)
    keys = {admin.create_key(USER).access_key for _ in range(2)}
    assert set(admin.list_keys(USER)) == keys


def test_deleting_a_key_removes_only_that_service_account(admin, http) -> None:
    admin.ensure_user(USER, GRANTS)
    keep, drop = admin.create_key(USER), admin.create_key(USER)
    admin.delete_key(USER, drop.access_key)
    sent = http.requests[-1]
    assert (sent["method"], sent["command"], sent["query"]) == (
        "DELETE",
        "delete-service-account",
        {"accessKey": drop.access_key},
    )
    assert admin.list_keys(USER) == [keep.access_key]


def test_an_unknown_user_has_no_keys(admin) -> None:
    assert admin.list_keys("spira-production-nobody") == []


def test_seed_and_rotation_run_unchanged_on_the_minio_adapter(admin, http) -> None:
    clock = WallClock()
    vault = InMemorySecretStore(clock)

    seed(
        "production",
        HvacKvOver(vault),
        admin,
        EnvironmentEndpoints("https://minio:9000", "http://mlflow:5000"),
    )
    old = vault.read(layout.secret_path("production", "serving")).data
    assert http.keys_of(USER) == {old["s3_access_key"]: old["s3_secret_key"]}
    rotate("production", "serving", vault, admin, RecordingWait(), clock=clock)
    new = vault.read(layout.secret_path("production", "serving")).data
    assert http.keys_of(USER) == {new["s3_access_key"]: new["s3_secret_key"]}
    assert new["s3_access_key"] != old["s3_access_key"]
    assert set(admin.s3.names) == {
        "spira-production-archive",
        "spira-production-features",
        "spira-production-mlflow",
        "spira-production-backups",
    }
    # The declared versioning reaches MinIO through plain S3 too; the archive is never versioned.
    assert admin.s3.versioning == {
        "spira-production-features": "Enabled",
        "spira-production-mlflow": "Enabled",
        "spira-production-backups": "Enabled",
    }
