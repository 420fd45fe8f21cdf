"""The object store's admin side: service users, bucket-scoped policies and access keys.

One port, one adapter per store. SeaweedFS (local) speaks the AWS IAM API on its S3 port, so the adapter
here is plain boto3 IAM; MinIO's admin API gets its own adapter behind the same port.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass

import botocore.exceptions

from infra.environments import BUCKET_ACTIONS, Grant
from infra.retention import BucketLifecycle


@dataclass(frozen=True)
class AccessKey:
    access_key: str
    secret_key: str


class ObjectStoreAdmin(ABC):
    """What seeding and rotation need from an object store."""

    @abstractmethod
    def ensure_bucket(self, bucket: str) -> None: ...

    @abstractmethod
    def configure_bucket(self, lifecycle: BucketLifecycle) -> None:
        """Versioning and lifecycle rules exactly as declared (infra/environments.yaml, `retention`)."""

    @abstractmethod
    def ensure_user(self, user: str, grants: tuple[Grant, ...]) -> None:
        """Create the user if needed and set its permissions to exactly these grants (replacing others)."""

    @abstractmethod
    def create_key(self, user: str) -> AccessKey: ...

    @abstractmethod
    def delete_key(self, user: str, access_key: str) -> None: ...

    @abstractmethod
    def list_keys(self, user: str) -> list[str]: ...


def bucket_policy(grants: tuple[Grant, ...]) -> str:
    """The IAM policy document of a service user, rendered from its declared grants
    (infra/environments.yaml, `object_store_access`): one statement per grant and kind of resource, object
    actions on `<bucket>/<prefix>*`, bucket actions (ListBucket) on the bucket, conditioned on `s3:prefix`
    when the grant has a prefix. Nothing is allowed that is not declared; no wildcard action. SeaweedFS's
    IAM API (which derives its identity actions from it and evaluates the document itself, conditions
    included) and MinIO take the same document."""
    if not grants:
        raise ValueError("a service user needs at least one grant")
    statements = []
    for g in grants:
        objects = [a for a in g.actions if a not in BUCKET_ACTIONS]
        buckets = [a for a in g.actions if a in BUCKET_ACTIONS]
        if objects:
            statements.append(
                {
                    "Effect": "Allow",
                    "Action": [f"s3:{a}" for a in objects],
                    "Resource": [f"arn:aws:s3:::{g.bucket}/{g.prefix}*"],
                }
            )
        if buckets:
            statement = {
                "Effect": "Allow",
                "Action": [f"s3:{a}" for a in buckets],
                "Resource": [f"arn:aws:s3:::{g.bucket}"],
            }
            if g.prefix:
                # Listing under a prefix only: a request for any other prefix (or none) is refused.
                statement["Condition"] = {"StringLike": {"s3:prefix": [f"{g.prefix}*"]}}
            statements.append(statement)
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def ensure_bucket_exists(s3_client, bucket: str) -> None:
    """Buckets are created through plain S3 by every adapter (only users and keys differ per store)."""
    existing = {b["Name"] for b in s3_client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3_client.create_bucket(Bucket=bucket)


def apply_bucket_lifecycle(s3_client, lifecycle: BucketLifecycle) -> None:
    """Versioning on (or suspended when the declaration stopped versioning a bucket: S3 cannot turn it off)
    and the lifecycle rules replaced by the declared ones, through plain S3 (SeaweedFS and MinIO alike)."""
    bucket = lifecycle.bucket
    status = s3_client.get_bucket_versioning(Bucket=bucket).get("Status")
    if lifecycle.versioned and status != "Enabled":
        s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    elif not lifecycle.versioned and status == "Enabled":
        s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    rules = lifecycle.rules()
    if rules:
        s3_client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    else:
        s3_client.delete_bucket_lifecycle(Bucket=bucket)


class IamObjectStoreAdmin(ObjectStoreAdmin):
    """AWS IAM API (SeaweedFS's embedded IAM on the S3 port)."""

    def __init__(self, s3_client, iam_client) -> None:
        self.s3 = s3_client
        self.iam = iam_client

    def ensure_bucket(self, bucket: str) -> None:
        ensure_bucket_exists(self.s3, bucket)

    def configure_bucket(self, lifecycle: BucketLifecycle) -> None:
        apply_bucket_lifecycle(self.s3, lifecycle)

    def ensure_user(self, user: str, grants: tuple[Grant, ...]) -> None:
        try:
            self.iam.get_user(UserName=user)
        except botocore.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] not in {"NoSuchEntity", "NoSuchEntityException", "404"}:
                raise
            self.iam.create_user(UserName=user)
        self.iam.put_user_policy(
            UserName=user, PolicyName=f"{user}-buckets", PolicyDocument=bucket_policy(grants)
        )

    def create_key(self, user: str) -> AccessKey:
        key = self.iam.create_access_key(UserName=user)["AccessKey"]
        return AccessKey(key["AccessKeyId"], key["SecretAccessKey"])

    def delete_key(self, user: str, access_key: str) -> None:
        self.iam.delete_access_key(UserName=user, AccessKeyId=access_key)

    def list_keys(self, user: str) -> list[str]:
        try:
            meta = self.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        except botocore.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] in {"NoSuchEntity", "NoSuchEntityException", "404"}:
                return []
            raise
        return [m["AccessKeyId"] for m in meta]
