"""The burst path's jobs: what the intake publishes and the workers consume (docs/queue.md).

Pure domain here (names, jobs, states, the ports); the NATS JetStream adapter is spira_core.queue.nats.

    names = QueueNames.from_secret(secret["queue"])       # infra/environments.yaml `queue`, via Vault
    job = Job.of_upload(names, data, idempotency_key, site, filename)
    state = await queue.enqueue(job)                      # the same key twice: the same job, published once
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STATUSES = (QUEUED, RUNNING, DONE, FAILED)
FINISHED = frozenset({DONE, FAILED})
# An idempotency key is echoed in a message header and a KV key derivation: bounded, printable.
MAX_KEY_LENGTH = 200


class PoisonMessage(ValueError):
    """A message that can never become a result (not a job, or a recording no worker can read)."""


class QueueUnavailable(RuntimeError):
    """The queue did not confirm in time (NATS restarting, unreachable): nothing was accepted."""


@dataclass(frozen=True)
class QueueNames:
    """infra/environments.yaml `queue` for one environment, as the intake's and workers' secrets carry it."""

    stream: str
    subject: str
    consumer: str
    dead_letter_stream: str
    dead_letter_subject: str
    results: str
    object_prefix: str
    ack_wait_s: float
    max_deliver: int
    backoff_s: tuple[float, ...]
    duplicate_window_s: float
    results_ttl_s: float
    replicas: int = 1

    @classmethod
    def from_secret(cls, value: str) -> QueueNames:
        raw = json.loads(value)
        return cls(**{**raw, "backoff_s": tuple(float(b) for b in raw["backoff_s"])})

    def retry_delay_s(self, delivery: int) -> float:
        """The delay before delivery `delivery + 1` after a failed one (the last declared delay after that)."""
        return self.backoff_s[min(max(delivery, 1), len(self.backoff_s)) - 1]


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def job_id_for(idempotency_key: str) -> str:
    """The job of an idempotency key (the content hash when the client sent none): one key, one job."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def check_idempotency_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValueError(f"an Idempotency-Key is 1 to {MAX_KEY_LENGTH} printable characters")
    return key


@dataclass(frozen=True)
class Job:
    job_id: str
    idempotency_key: str
    object_key: str  # the recording in the archive bucket, by content hash
    sha256: str
    site: str = ""
    filename: str = ""
    submitted_at: float = 0.0

    @classmethod
    def of_upload(
        cls, names: QueueNames, data: bytes, key: str | None, site: str = "", filename: str = ""
    ) -> Job:
        digest = content_hash(data)
        key = check_idempotency_key(key) if key is not None else f"sha256:{digest}"
        return cls(
            job_id=job_id_for(key),
            idempotency_key=key,
            object_key=f"{names.object_prefix}{digest[:2]}/{digest}",
            sha256=digest,
            site=site,
            filename=filename,
            submitted_at=time.time(),
        )

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Job:
        try:
            fields = json.loads(raw)
            job = cls(**fields)
        except (ValueError, TypeError) as exc:
            raise PoisonMessage(f"not a job: {exc}") from exc
        if not (isinstance(job.object_key, str) and job.object_key and len(job.job_id) == 32):
            raise PoisonMessage("not a job: no recording or a malformed job id")
        return job


@dataclass(frozen=True)
class JobState:
    status: str
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None  # {"error": code, "detail": reason} of a failed job
    attempts: int = 0
    updated_at: float = field(default_factory=time.time)

    def to_bytes(self) -> bytes:
        # the fields by name, not dataclasses.asdict: that deep-copies the result per write (same bytes)
        fields = {"status": self.status, "result": self.result, "error": self.error, "attempts": self.attempts,
                  "updated_at": self.updated_at}  # fmt: skip
        return json.dumps(fields, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> JobState:
        return cls(**json.loads(raw))

    def answer(self, job_id: str) -> dict[str, Any]:
        """GET /v1/jobs/{job_id}."""
        out: dict[str, Any] = {"job_id": job_id, "status": self.status}
        if self.result is not None:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        return out


class Delivery(ABC):
    """One delivery of a message from the work queue to a worker."""

    data: bytes
    attempt: int  # 1 for the first delivery

    @abstractmethod
    async def ack(self) -> None:
        """Done: the server confirms it before this returns (the message leaves the work queue)."""

    @abstractmethod
    async def retry_later(self, delay_s: float) -> None:
        """Not done: deliver again after `delay_s`."""


class JobQueue(ABC):
    """The port both sides use: the intake enqueues and reads states, the workers take deliveries, write
    states and dead-letter what can never succeed."""

    @abstractmethod
    async def enqueue(self, job: Job) -> tuple[JobState, bool]:
        """Record the job as queued unless it is known, then publish it unless it finished; the state and
        whether this call published a new message (False for a duplicate)."""

    @abstractmethod
    async def state(self, job_id: str) -> JobState | None: ...

    @abstractmethod
    async def put_state(self, job_id: str, state: JobState) -> None:
        """Stored (the server confirmed) when this returns."""

    async def announce_state(self, job_id: str, state: JobState) -> None:
        """An advisory state (`running`): written without waiting for a confirmation where the queue can,
        in order before any later write of the same job from this worker. Losing one changes nothing a
        client relies on (the result overwrites it), so failures are ignored. Default: put_state."""
        with contextlib.suppress(QueueUnavailable):
            await self.put_state(job_id, state)

    async def ack_all(self, deliveries: list[Delivery]) -> None:
        """Ack every delivery (each one's result already stored); confirmed by the server when this returns,
        else QueueUnavailable (the unconfirmed come back after ack_wait). Default: each `ack`, concurrently."""
        outcomes = await asyncio.gather(*(d.ack() for d in deliveries), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    @abstractmethod
    async def fetch(self, max_messages: int, timeout_s: float) -> list[Delivery]: ...

    @abstractmethod
    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Copy the message with its reason to the dead-letter stream (confirmed), then ack it."""

    @abstractmethod
    async def close(self) -> None: ...
