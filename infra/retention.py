"""infra/environments.yaml's `retention`: which buckets are versioned, how long previous versions and the
objects under each prefix are kept, and which prefix holds patients' audio.

Pure functions over the declaration (no S3, no Pulumi): `spira secrets seed` applies the result to the
buckets through the S3 API, the Pulumi program turns versioning on in the charts' bucket lists, and
`spira archive purge` (the archive-purge CronJob in clusters) deletes patient audio older than its period.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from infra.environments import DECLARATION, DeclarationError, declared

WHERE = "infra/environments.yaml: retention"


@dataclass(frozen=True)
class Expiry:
    """Objects of `bucket` under `prefix` are deleted `days` after they were written."""

    bucket: str
    prefix: str
    days: int
    patient_audio: bool = False


@dataclass(frozen=True)
class BucketLifecycle:
    """Everything the declaration says about one bucket of one environment."""

    bucket: str
    versioned: bool
    noncurrent_days: int | None  # versioned buckets only
    expiries: tuple[Expiry, ...]

    def rules(self) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules, in the S3 API's shape (boto3 `LifecycleConfiguration.Rules`)."""
        out: list[dict[str, Any]] = [
            {
                "ID": f"expire-{e.prefix.rstrip('/')}",
                "Status": "Enabled",
                "Filter": {"Prefix": e.prefix},
                "Expiration": {"Days": e.days},
            }
            for e in self.expiries
        ]
        if self.versioned and self.noncurrent_days:
            out.append(
                {
                    "ID": "expire-noncurrent-versions",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": self.noncurrent_days},
                }
            )
        return out


@dataclass(frozen=True)
class Retention:
    versioned: frozenset[str]  # bucket secret keys
    noncurrent_days: dict[str, int]  # env -> days
    expire: tuple[tuple[str, str, dict[str, int], bool], ...]  # (bucket key, prefix, env -> days, audio)

    def bucket(self, env: str, bucket: str) -> BucketLifecycle:
        """The lifecycle of a declared bucket by its name (`spira-<env>-<suffix>`)."""
        by_name = {name: key for key, name in declared().buckets(env).items()}
        if bucket not in by_name:
            raise DeclarationError(f"{bucket!r} is not a declared bucket of {env!r}")
        key = by_name[bucket]
        versioned = key in self.versioned
        return BucketLifecycle(
            bucket=bucket,
            versioned=versioned,
            noncurrent_days=self.noncurrent_days[env] if versioned else None,
            expiries=tuple(
                Expiry(bucket, prefix, days[env], audio) for k, prefix, days, audio in self.expire if k == key
            ),
        )

    def buckets(self, env: str) -> tuple[BucketLifecycle, ...]:
        return tuple(self.bucket(env, name) for name in declared().buckets(env).values())

    def patient_audio(self, env: str) -> Expiry:
        """The one prefix of patients' uploads and its retention period in `env`."""
        (audio,) = [e for b in self.buckets(env) for e in b.expiries if e.patient_audio]
        return audio


def _days(raw: Any, what: str) -> dict[str, int]:
    envs = declared().names
    if not isinstance(raw, dict) or set(raw) != set(envs):
        raise DeclarationError(f"{WHERE}: {what} needs days for exactly {list(envs)}, got {raw!r}")
    out = {}
    for env, days in raw.items():
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            raise DeclarationError(f"{WHERE}: {what} for {env} must be a whole number of days >= 1")
        out[str(env)] = days
    return out


def parse(raw: Any) -> Retention:
    """The `retention` section, checked: declared buckets, periods for every environment, prefixes ending
    with '/', exactly one patient-audio prefix, and that one in a bucket that is not versioned (a
    versioned bucket would keep a deleted upload as a previous version)."""
    if not isinstance(raw, dict):
        raise DeclarationError(f"{WHERE} is missing")
    keys = set(declared().bucket_suffixes)
    versioned = frozenset(str(k) for k in raw.get("versioned") or [])
    if versioned - keys:
        raise DeclarationError(f"{WHERE}.versioned names undeclared buckets {sorted(versioned - keys)}")
    expire = []
    for item in raw.get("expire") or []:
        key, prefix = str(item.get("bucket")), str(item.get("prefix") or "")
        if key not in keys:
            raise DeclarationError(f"{WHERE}.expire names the undeclared bucket {key!r}")
        if not prefix.endswith("/"):
            raise DeclarationError(f"{WHERE}.expire: the prefix {prefix!r} must end with '/'")
        expire.append(
            (key, prefix, _days(item.get("days"), f"{key} {prefix}"), bool(item.get("patient_audio")))
        )
    audio = [e for e in expire if e[3]]
    if len(audio) != 1:
        raise DeclarationError(f"{WHERE}.expire must mark exactly one prefix patient_audio, not {len(audio)}")
    if audio[0][0] in versioned:
        raise DeclarationError(
            f"{WHERE}: patient audio ({audio[0][0]}) is in a versioned bucket, where a deleted upload lives "
            "on as a previous version"
        )
    return Retention(
        versioned=versioned,
        noncurrent_days=_days(raw.get("noncurrent_version_days"), "noncurrent_version_days"),
        expire=tuple(expire),
    )


@cache
def retention() -> Retention:
    """The repository's declaration (read once per process)."""
    return parse(yaml.safe_load(DECLARATION.read_text()).get("retention"))
