"""A batch run's lease on its credential: which secret version a run holds, while it runs.

A training run reads its secret once, at start, and keeps that S3 key until it ends. So that a rotation
can wait for it, the run keeps a small JSON object in its own bucket (`_leases/<service>/<run id>.json`)
while it runs: the secret version it read, when it started, and a heartbeat refreshed every
HEARTBEAT_S. The run marks it ended when it ends (its grants let it put, not delete; the rotation, as the
store's admin, removes finished leases); a lease whose heartbeat is older than EXPIRES_S belongs to a run
that died (its key is no longer held). Pure: the format and the rule, no I/O.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta

PREFIX = "_leases"
HEARTBEAT_S = 10.0
# A run writes its lease at most this long after reading its secret: a rotation looks at the leases no
# sooner than this after publishing, so a run that read the old version just before is seen.
WRITTEN_WITHIN_S = 10.0
EXPIRES_S = 60.0
UNKNOWN_VERSION = 0  # settings from a file, not Vault: the run may hold any key


def lease_prefix(service: str) -> str:
    return f"{PREFIX}/{service}/"


def lease_key(service: str, run_id: str) -> str:
    return f"{lease_prefix(service)}{run_id}.json"


@dataclass(frozen=True)
class RunLease:
    run_id: str
    service: str
    secret_version: int  # the KV version of the secret the run read at start (0: unknown)
    started_at: datetime
    heartbeat_at: datetime
    holder: str  # host and pid (a pod's name in a cluster)
    ended: bool = False  # the run's last write (its key may put, not delete: the rotation removes it)

    def to_json(self) -> bytes:
        d = asdict(self)
        d["started_at"] = self.started_at.isoformat()
        d["heartbeat_at"] = self.heartbeat_at.isoformat()
        return json.dumps(d, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RunLease:
        d = json.loads(raw)
        return cls(
            run_id=str(d["run_id"]),
            service=str(d["service"]),
            secret_version=int(d["secret_version"]),
            started_at=datetime.fromisoformat(d["started_at"]),
            heartbeat_at=datetime.fromisoformat(d["heartbeat_at"]),
            holder=str(d["holder"]),
            ended=bool(d.get("ended", False)),
        )

    def beat(self, now: datetime, ended: bool = False) -> RunLease:
        return replace(self, heartbeat_at=now, ended=ended)

    def live(self, now: datetime, expires_s: float = EXPIRES_S) -> bool:
        return not self.ended and now - self.heartbeat_at <= timedelta(seconds=expires_s)

    def holds_older_than(self, version: int) -> bool:
        """Does this run hold a key older than `version` (or one it cannot tell)?"""
        return self.secret_version == UNKNOWN_VERSION or self.secret_version < version
