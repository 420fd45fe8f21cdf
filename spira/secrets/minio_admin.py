"""MinIO (clusters) behind the ObjectStoreAdmin port, through MinIO's admin API (`minio` SDK's MinioAdmin).

Mapping: a service user is a MinIO user (its own password is random and never used); a service key is a
MinIO service account ("access key") of that user, which inherits the user's bucket policy, so deleting
it revokes exactly that key. Buckets are made with S3 calls as the admin.

MinioAdmin.add_service_account (minio 7.2.20) has no `targetUser`, so it would create the key for the
admin itself; the request is therefore sent through the SDK's signed, encrypted transport with the
madmin `targetUser` field (the same body `mc admin accesskey create ALIAS USER` sends).
"""

from __future__ import annotations

import json
import secrets
import string
from urllib.parse import urlsplit

from infra.environments import Grant
from infra.retention import BucketLifecycle
from spira.secrets.objectstore import (
    AccessKey,
    ObjectStoreAdmin,
    apply_bucket_lifecycle,
    bucket_policy,
    ensure_bucket_exists,
)

NO_SUCH_USER = "XMinioAdminNoSuchUser"
ALREADY_APPLIED = "XMinioAdminPolicyChangeAlreadyApplied"
_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits


def new_access_key_id() -> str:
    # MinIO accepts 3..20 characters for an access key; 20 upper-case alphanumerics like AWS's.
    return "".join(secrets.choice(_ALPHABET) for _ in range(20))


def new_secret_key() -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))


def admin_error_code(exc: Exception) -> str | None:
    """The madmin error code ("XMinioAdminNoSuchUser") in a MinioAdminException's JSON body."""
    body = getattr(exc, "_body", "") or ""
    try:
        return json.loads(body).get("Code")
    except (ValueError, AttributeError):
        return None


def minio_admin(endpoint: str, access_key: str, secret_key: str, http_client=None):
    """A MinioAdmin for an `http(s)://host:port` endpoint (as stored at spira/<env>/objectstore)."""
    from minio import MinioAdmin
    from minio.credentials import StaticProvider

    url = urlsplit(endpoint)
    return MinioAdmin(
        endpoint=url.netloc,
        credentials=StaticProvider(access_key, secret_key),
        secure=url.scheme == "https",
        http_client=http_client,
    )


class MinioObjectStoreAdmin(ObjectStoreAdmin):
    def __init__(self, admin, s3_client) -> None:
        self.admin = admin
        self.s3 = s3_client

    def ensure_bucket(self, bucket: str) -> None:
        ensure_bucket_exists(self.s3, bucket)

    def configure_bucket(self, lifecycle: BucketLifecycle) -> None:
        apply_bucket_lifecycle(self.s3, lifecycle)

    def ensure_user(self, user: str, grants: tuple[Grant, ...]) -> None:
        from minio.error import MinioAdminException

        try:
            self.admin.user_info(user)
        except MinioAdminException as exc:
            if admin_error_code(exc) != NO_SUCH_USER:
                raise
            self.admin.user_add(user, new_secret_key())
        policy = f"{user}-buckets"
        self.admin.policy_add(policy, policy=json.loads(bucket_policy(grants)))  # replaces: idempotent
        try:
            self.admin.attach_policy([policy], user=user)
        except MinioAdminException as exc:
            if admin_error_code(exc) != ALREADY_APPLIED:
                raise

    def create_key(self, user: str) -> AccessKey:
        from minio.crypto import decrypt, encrypt
        from minio.minioadmin import _COMMAND

        key = AccessKey(new_access_key_id(), new_secret_key())
        admin_secret = self.admin._provider.retrieve().secret_key
        body = json.dumps(
            {
                "status": "enabled",
                "accessKey": key.access_key,
                "secretKey": key.secret_key,
                "targetUser": user,
                "description": "SPIRA service key (spira secrets)",
            }
        ).encode()
        response = self.admin._url_open(
            method="PUT",
            command=_COMMAND.SERVICE_ACCOUNT_ADD,
            body=encrypt(body, admin_secret),
            preload_content=False,
        )
        created = json.loads(decrypt(response, admin_secret))["credentials"]
        return AccessKey(created["accessKey"], created["secretKey"])

    def delete_key(self, user: str, access_key: str) -> None:
        self.admin.delete_service_account(access_key)

    def list_keys(self, user: str) -> list[str]:
        from minio.error import MinioAdminException

        try:
            listed = json.loads(self.admin.list_service_account(user))
        except MinioAdminException as exc:
            if admin_error_code(exc) == NO_SUCH_USER:
                return []
            raise
        # Newer servers list objects ({"accessKey": ...}); older ones bare access-key strings.
        return [a["accessKey"] if isinstance(a, dict) else str(a) for a in listed.get("accounts") or []]
