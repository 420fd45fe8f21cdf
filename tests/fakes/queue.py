"""Fakes for the burst path's ports: the job queue (with its deliveries) and the recordings store."""

from __future__ import annotations

from spira_core.objects import ObjectMissing, Recordings
from spira_core.queue import FINISHED, QUEUED, Delivery, Job, JobQueue, JobState, QueueUnavailable


class FakeDelivery(Delivery):
    def __init__(self, data: bytes, attempt: int = 1, log: list | None = None) -> None:
        self.data = data
        self.attempt = attempt
        self.log = log if log is not None else []
        self.acked = False
        self.retry_delay: float | None = None

    async def ack(self) -> None:
        self.acked = True
        self.log.append(("ack", self.data))

    async def retry_later(self, delay_s: float) -> None:
        self.retry_delay = delay_s
        self.log.append(("retry", self.data))


class FakeJobQueue(JobQueue):
    """In memory: published messages, states, dead letters, and the order of writes and acks in `log`."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.msg_ids: set[str] = set()
        self.states: dict[str, JobState] = {}
        self.dead: list[tuple[bytes, str]] = []
        self.log: list[tuple[str, object]] = []
        self.unavailable = 0  # the next N calls raise QueueUnavailable

    def _maybe_down(self) -> None:
        if self.unavailable:
            self.unavailable -= 1
            raise QueueUnavailable("fake outage")

    async def enqueue(self, job: Job) -> tuple[JobState, bool]:
        self._maybe_down()
        state = self.states.setdefault(job.job_id, JobState(QUEUED))
        if state.status in FINISHED or job.job_id in self.msg_ids:
            return state, False
        self.msg_ids.add(job.job_id)
        self.messages.append(job.to_bytes())
        return state, True

    async def state(self, job_id: str) -> JobState | None:
        self._maybe_down()
        return self.states.get(job_id)

    async def put_state(self, job_id: str, state: JobState) -> None:
        self._maybe_down()
        self.states[job_id] = state
        self.log.append(("state", (job_id, state.status)))

    async def fetch(self, max_messages: int, timeout_s: float) -> list[Delivery]:
        taken, self.messages = self.messages[:max_messages], self.messages[max_messages:]
        return [FakeDelivery(m, log=self.log) for m in taken]

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self.dead.append((delivery.data, reason))
        await delivery.ack()

    async def close(self) -> None:
        pass


class FakeRecordings(Recordings):
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, body: bytes) -> None:
        self.objects[key] = body

    def get(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise ObjectMissing(key) from None
