"""Every object of every bucket through S3 (admin identity), and SeaweedFS's identities from its filer.

Objects are stored by content (`blobs/<sha256>`), listed per bucket in `objects.json` (key, size, sha256,
content type, user metadata). Restore writes each object whose bytes differ (an identical object is
left alone, so a second restore writes nothing) and deletes none: an object written after the backup (an
upload archived since) is kept.

The service users, their access keys and inline policies are not objects of any bucket: SeaweedFS keeps
them in its filer under /etc/iam (`identities/<user>.json`, `policies.json`). The backup copies that tree
through the filer's HTTP API and the restore writes it back (the S3 gateway reloads it); identities the
backup does not hold are deleted, since the restored Vault no longer names their keys. The admin
identity is the stack's static file (`s3/identities.json`): the restore refuses a stack whose admin
identity is another than the backup's, because the restored Vault holds the backup's admin keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import botocore.exceptions
import requests

from spira.backup.manifest import CHUNK, BackupFailed, BackupRefused, write_private
from spira.backup.ports import ObjectStoreCopy, PartResult, Say
from spira.stack.seaweed import SeaweedService

INDEX = "objects.json"
BLOBS = "blobs"
IAM = "iam"
ADMIN = "admin-identity.json"
DIR_MODE = 1 << 31  # Go's os.ModeDir, as the filer reports it
UNKNOWN_KEY = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId"}


class SeaweedObjectStoreCopy(ObjectStoreCopy):
    def __init__(
        self, service: SeaweedService, filer_url: str, iam_root: str = "/etc/iam", wait_s: float = 60
    ) -> None:
        self.service = service
        self.filer = filer_url.rstrip("/")
        self.iam_root = iam_root.rstrip("/")
        self.wait_s = wait_s

    # -- the filer ----------------------------------------------------------------------------------
    def _filer_files(self, directory: str) -> dict[str, bytes | None]:
        """Every file under a filer directory, recursively: full path -> its bytes when the filer keeps them
        inside the entry (as it does for IAM files), else None (read them with a GET); {} if absent."""
        files: dict[str, bytes | None] = {}
        last = ""
        while True:
            resp = requests.get(
                f"{self.filer}{directory}/",
                params={"limit": 1000, "lastFileName": last},
                headers={"Accept": "application/json"},
                timeout=30,
            )
            if resp.status_code == 404:
                return files
            resp.raise_for_status()
            doc = resp.json()
            for entry in doc.get("Entries") or []:
                if int(entry["Mode"]) & DIR_MODE:
                    files |= self._filer_files(entry["FullPath"])
                else:
                    inline = entry.get("Content")
                    files[entry["FullPath"]] = base64.b64decode(inline) if inline else None
            if not doc.get("ShouldDisplayLoadMore"):
                return files
            last = doc["LastFileName"]

    def _filer_read(self, path: str, inline: bytes | None) -> bytes:
        if inline is not None:
            return inline
        resp = requests.get(f"{self.filer}{path}", timeout=30)
        resp.raise_for_status()
        return resp.content

    def _filer_write(self, path: str, data: bytes) -> None:
        """A multipart upload: the filer keeps a small file inside its entry, which is where SeaweedFS's
        credential manager reads identities from (a chunked file reads as empty to it, and one unreadable
        identity file stops every IAM reload)."""
        name = path.rsplit("/", 1)[-1]
        resp = requests.post(
            f"{self.filer}{path}", files={"file": (name, data, "application/json")}, timeout=30
        )
        if resp.status_code >= 300:
            raise BackupFailed(f"objectstore: the filer refused {path}: {resp.status_code} {resp.text[:200]}")

    # -- take ---------------------------------------------------------------------------------------
    def take(self, dest: Path, say: Say) -> PartResult:
        s3 = self.service.client()
        blobs = dest / BLOBS
        blobs.mkdir(mode=0o700)
        index: dict[str, list[dict[str, Any]]] = {}
        total = 0
        for bucket in sorted(b["Name"] for b in s3.list_buckets().get("Buckets", [])):
            objects = index.setdefault(bucket, [])
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    objects.append(self._download(s3, bucket, item["Key"], blobs))
                    total += objects[-1]["size"]
            say(f"objectstore: {bucket}: {len(objects)} objects")
        write_private(dest / INDEX, json.dumps(index, indent=1, sort_keys=True).encode())
        identities = []
        for path, inline in self._filer_files(self.iam_root).items():
            rel = path[len(self.iam_root) + 1 :]
            write_private(dest / IAM / rel, self._filer_read(path, inline))
            if rel.startswith("identities/"):
                identities.append(Path(rel).stem)
        write_private(dest / ADMIN, self.service.identities.read_bytes())
        count = sum(len(v) for v in index.values())
        return PartResult(
            f"{count} objects in {len(index)} buckets, {len(identities)} identities",
            {
                "buckets": {b: len(v) for b, v in index.items()},
                "objects": count,
                "bytes": total,
                "identities": sorted(identities),
                "admin_access_key": self.service.admin_keys()["access_key"],
            },
        )

    @staticmethod
    def _download(s3, bucket: str, key: str, blobs: Path) -> dict[str, Any]:
        resp = s3.get_object(Bucket=bucket, Key=key)
        digest = hashlib.sha256()
        tmp = blobs / ".incoming"
        size = 0
        with open(tmp, "wb") as fh:
            for block in resp["Body"].iter_chunks(CHUNK):
                digest.update(block)
                fh.write(block)
                size += len(block)
        sha = digest.hexdigest()
        tmp.replace(blobs / sha)
        return {
            "key": key,
            "size": size,
            "sha256": sha,
            "content_type": resp.get("ContentType") or "binary/octet-stream",
            "metadata": resp.get("Metadata") or {},
        }

    # -- check --------------------------------------------------------------------------------------
    def check(self, src: Path, taken: dict[str, Any]) -> None:
        try:
            index = json.loads((src / INDEX).read_text())
            missing = [
                o["key"] for objs in index.values() for o in objs if not (src / BLOBS / o["sha256"]).is_file()
            ]
        except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise BackupRefused(f"{src / INDEX} is unreadable ({exc})") from exc
        if missing:
            raise BackupRefused(
                f"{src / BLOBS} lacks the bytes of {len(missing)} objects, first {missing[0]!r}"
            )
        try:
            theirs = json.loads((src / ADMIN).read_text())["identities"][0]["credentials"][0]
        except (OSError, json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise BackupRefused(f"{src / ADMIN} is unreadable ({exc})") from exc
        ours = self.service.admin_keys()
        if (theirs["accessKey"], theirs["secretKey"]) != (ours["access_key"], ours["secret_key"]):
            raise BackupRefused(
                f"the backup's object-store admin key {theirs['accessKey']} is not this stack's "
                f"({ours['access_key']}): restore into the stack it was taken from, or copy {src / ADMIN} to "
                f"{self.service.identities} before `spira stack up`"
            )

    # -- restore ------------------------------------------------------------------------------------
    def restore(self, src: Path, taken: dict[str, Any], say: Say) -> PartResult:
        identities = self._restore_identities(src, say)
        s3 = self.service.client()
        index: dict[str, list[dict[str, Any]]] = json.loads((src / INDEX).read_text())
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        written = same = 0
        for bucket, objects in sorted(index.items()):
            if bucket not in existing:
                s3.create_bucket(Bucket=bucket)
            for obj in objects:
                if self._already_there(s3, bucket, obj, src / BLOBS / obj["sha256"]):
                    same += 1
                    continue
                with open(src / BLOBS / obj["sha256"], "rb") as body:
                    s3.put_object(
                        Bucket=bucket,
                        Key=obj["key"],
                        Body=body,
                        ContentType=obj["content_type"],
                        Metadata=obj["metadata"],
                    )
                written += 1
            say(f"objectstore: {bucket}: {len(objects)} objects")
        self._confirm(s3, index)
        count = sum(len(v) for v in index.values())
        return PartResult(
            f"{count} objects in {len(index)} buckets ({written} written, {same} already there), "
            f"{identities} identities",
            {"objects": count, "written": written, "unchanged": same},
        )

    @staticmethod
    def _already_there(s3, bucket: str, obj: dict[str, Any], blob: Path) -> bool:
        try:
            head = s3.head_object(Bucket=bucket, Key=obj["key"])
        except botocore.exceptions.ClientError:
            return False
        if head["ContentLength"] != obj["size"] or head.get("Metadata", {}) != obj["metadata"]:
            return False
        md5 = hashlib.md5(usedforsecurity=False)
        with open(blob, "rb") as fh:
            while block := fh.read(CHUNK):
                md5.update(block)
        return head.get("ETag", "").strip('"') == md5.hexdigest()

    @staticmethod
    def _confirm(s3, index: dict[str, list[dict[str, Any]]]) -> None:
        for bucket, objects in index.items():
            sizes = {}
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                sizes |= {o["Key"]: o["Size"] for o in page.get("Contents", [])}
            wrong = [o["key"] for o in objects if sizes.get(o["key"]) != o["size"]]
            if wrong:
                raise BackupFailed(
                    f"objectstore: after the restore {bucket}/{wrong[0]} is missing or differs"
                )

    def _restore_identities(self, src: Path, say: Say) -> int:
        ours = {p.relative_to(src / IAM).as_posix(): p for p in sorted((src / IAM).rglob("*")) if p.is_file()}
        for rel, path in ours.items():
            self._filer_write(f"{self.iam_root}/{rel}", path.read_bytes())
        for path in self._filer_files(self.iam_root):
            if path[len(self.iam_root) + 1 :] not in ours:
                requests.delete(f"{self.filer}{path}", timeout=30).raise_for_status()
        keys = [
            (cred["access_key"], cred["secret_key"])
            for rel, path in ours.items()
            if rel.startswith("identities/")
            for cred in json.loads(path.read_text()).get("credentials", [])
            if cred.get("status", "Active") == "Active"
        ]
        self._wait_until_known(keys)
        say(f"objectstore: {len(ours)} identity files restored; {len(keys)} access keys answer")
        return sum(1 for rel in ours if rel.startswith("identities/"))

    def _wait_until_known(self, keys: list[tuple[str, str]]) -> None:
        """The S3 gateway reloads identities from the filer asynchronously: wait until each key is known."""
        deadline = time.monotonic() + self.wait_s
        pending = list(keys)
        while pending:
            access, secret = pending[0]
            try:
                self.service.client("s3", access, secret).list_buckets()
                pending.pop(0)
                continue
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in UNKNOWN_KEY:
                    pending.pop(0)  # known key, merely not allowed to list: authenticated
                    continue
            if time.monotonic() > deadline:
                raise BackupFailed(
                    f"objectstore: access key {access} is still unknown after {self.wait_s:.0f}s"
                )
            time.sleep(0.5)
