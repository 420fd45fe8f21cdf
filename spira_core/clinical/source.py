"""Where a frozen holdout is read from: a local folder's `dataset.csv`, or `s3://bucket/holdout/<version>/`.

`open_holdout(ref)` parses the manifest and returns a reader of each recording's bytes that checks them
against the manifest's sha256 (a changed file is refused, not scored). S3 credentials and endpoint come from
the standard AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`), which is
what `spira stack env` exports and what the gate Job receives; boto3 is imported only for an s3:// ref.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spira_core.clinical.holdout import Holdout, HoldoutError, HoldoutItem, parse_csv

MANIFEST = "dataset.csv"
CURRENT = "CURRENT"  # the key, beside the versions, that names the holdout version in use


@dataclass(frozen=True)
class OpenHoldout:
    holdout: Holdout
    where: str
    read: Callable[[str], bytes]  # a path relative to the holdout's folder -> bytes

    def audio(self, item: HoldoutItem) -> bytes:
        data = self.read(item.file_path)
        if hashlib.sha256(data).hexdigest() != item.sha256:
            raise HoldoutError(f"{self.where}: {item.file_path} does not match its sha256 in the manifest")
        return data


def from_reader(read: Callable[[str], bytes], where: str) -> OpenHoldout:
    try:
        text = read(MANIFEST).decode("utf-8")
    except (OSError, KeyError) as exc:
        raise HoldoutError(f"{where}: no {MANIFEST} ({exc})") from exc
    return OpenHoldout(parse_csv(text, f"{where}{MANIFEST}"), where, read)


def _local(csv_path: Path) -> OpenHoldout:
    folder = csv_path.resolve().parent

    def read(rel: str) -> bytes:
        return (csv_path if rel == MANIFEST else folder / rel).read_bytes()

    return from_reader(read, f"{folder}/")


def _s3(url: str) -> OpenHoldout:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = url.removeprefix("s3://").partition("/")
    prefix = key.removesuffix(MANIFEST).rstrip("/") + "/"
    config = Config(
        connect_timeout=3, read_timeout=30, retries={"max_attempts": 2}, s3={"addressing_style": "path"}
    )
    client = boto3.client("s3", config=config)

    def read(rel: str) -> bytes:
        try:
            return client.get_object(Bucket=bucket, Key=prefix + rel)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise OSError(f"s3://{bucket}/{prefix}{rel}: {exc}") from exc

    if prefix.rstrip("/").endswith("holdout"):  # the bucket's holdout folder: its current version
        version = read(CURRENT).decode().strip()
        prefix = f"{prefix}{version}/"
    return from_reader(read, f"s3://{bucket}/{prefix}")


def open_holdout(ref: str | Path) -> OpenHoldout:
    """A local CSV (or its folder), `s3://bucket/holdout/<version>/` or `s3://bucket/holdout/` (current)."""
    text = str(ref)
    try:
        if text.startswith("s3://"):
            return _s3(text)
        path = Path(text)
        return _local(path / MANIFEST if path.is_dir() else path)
    except OSError as exc:
        raise HoldoutError(f"holdout {text} cannot be read: {exc}") from exc
