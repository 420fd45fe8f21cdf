"""JetStream adapter of the job queue: a work-queue stream of jobs, a durable pull consumer, a dead-letter
stream and a key-value bucket of job states, all named by infra/environments.yaml `queue`.

Publishing carries `Nats-Msg-Id: <job id>`: within the stream's duplicate window the server stores one
message per job however often a client (or an intake retrying across a NATS restart) sends it. Every call
that must be durable waits for the server's confirmation; one that gets none within `timeout_s` raises
QueueUnavailable and counts as not done (the intake answers 503, a worker does not ack).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import nats
import nats.errors
import nats.js.errors
from nats.js import api

from spira_core.queue import (
    FINISHED,
    QUEUED,
    Delivery,
    Job,
    JobQueue,
    JobState,
    QueueNames,
    QueueUnavailable,
)
from spira_core.tls import nats_tls

log = logging.getLogger(__name__)
# What a lost server looks like to nats-py: no reply in time, no responders, a connection closing or gone.
TRANSIENT = (
    asyncio.TimeoutError,
    TimeoutError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
    OSError,
)


class NatsDelivery(Delivery):
    def __init__(self, msg, timeout_s: float) -> None:
        self.msg = msg
        self.data = msg.data
        self.attempt = int(msg.metadata.num_delivered)
        self.timeout_s = timeout_s

    async def ack(self) -> None:
        try:
            await self.msg.ack_sync(timeout=self.timeout_s)
        except TRANSIENT as exc:
            raise QueueUnavailable(f"ack not confirmed: {exc!r}") from exc

    async def retry_later(self, delay_s: float) -> None:
        with contextlib.suppress(*TRANSIENT):  # an unconfirmed nak still redelivers after ack_wait
            await self.msg.nak(delay=delay_s)


class NatsJobQueue(JobQueue):
    def __init__(self, nc, names: QueueNames, timeout_s: float = 5.0) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=timeout_s)
        self.names = names
        self.timeout_s = timeout_s
        self._kv = None
        self._sub = None

    @classmethod
    async def connect(cls, url: str, names: QueueNames, name: str, timeout_s: float = 5.0) -> NatsJobQueue:
        """Connected (reconnecting forever in the background), with the streams, bucket and consumer."""
        nc = await nats.connect(
            url,
            name=name,
            connect_timeout=2,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            tls=nats_tls(url),  # tls://: the platform CA only (spira_core/tls.py)
        )
        queue = cls(nc, names, timeout_s)
        await queue.ensure()
        return queue

    async def ensure(self) -> None:
        """The streams, the results bucket and the durable consumer, as declared (idempotent)."""
        n = self.names
        await self._stream(
            api.StreamConfig(
                name=n.stream,
                subjects=[n.subject],
                retention=api.RetentionPolicy.WORK_QUEUE,
                storage=api.StorageType.FILE,
                duplicate_window=n.duplicate_window_s,
                num_replicas=n.replicas,
            )
        )
        await self._stream(
            api.StreamConfig(
                name=n.dead_letter_stream,
                subjects=[n.dead_letter_subject],
                retention=api.RetentionPolicy.LIMITS,
                storage=api.StorageType.FILE,
                num_replicas=n.replicas,
            )
        )
        self._kv = await self.js.create_key_value(
            api.KeyValueConfig(
                bucket=n.results,
                history=1,
                ttl=n.results_ttl_s,
                storage=api.StorageType.FILE,
                replicas=n.replicas,
            )
        )
        config = api.ConsumerConfig(
            durable_name=n.consumer,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=n.ack_wait_s,
            max_deliver=n.max_deliver,
            filter_subject=n.subject,
        )
        try:
            await self.js.add_consumer(n.stream, config)
        except nats.js.errors.BadRequestError:
            await self.js.update_consumer(n.stream, config)

    async def _stream(self, config: api.StreamConfig) -> None:
        try:
            await self.js.add_stream(config)
        except nats.js.errors.BadRequestError:  # it exists with other settings: bring it to the declared ones
            await self.js.update_stream(config)

    # -- the intake's side --------------------------------------------------------------------------
    async def enqueue(self, job: Job) -> tuple[JobState, bool]:
        try:
            state = JobState(QUEUED)
            try:
                await self._kv.create(job.job_id, state.to_bytes())
            except nats.js.errors.KeyWrongLastSequenceError:
                known = await self.state(job.job_id)
                if known is not None and known.status in FINISHED:
                    return known, False
                state = known or state
            ack = await self.js.publish(
                self.names.subject,
                job.to_bytes(),
                stream=self.names.stream,
                headers={"Nats-Msg-Id": job.job_id},
            )
            return state, not ack.duplicate
        except TRANSIENT as exc:
            raise QueueUnavailable(f"the queue did not confirm the job: {exc!r}") from exc

    async def state(self, job_id: str) -> JobState | None:
        try:
            entry = await self._kv.get(job_id)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        except TRANSIENT as exc:
            raise QueueUnavailable(f"the results bucket did not answer: {exc!r}") from exc
        return JobState.from_bytes(entry.value) if entry.value else None

    # -- the workers' side --------------------------------------------------------------------------
    async def put_state(self, job_id: str, state: JobState) -> None:
        try:
            await self._kv.put(job_id, state.to_bytes())
        except TRANSIENT as exc:
            raise QueueUnavailable(f"the state of {job_id} was not stored: {exc!r}") from exc

    async def announce_state(self, job_id: str, state: JobState) -> None:
        """A plain publish to the bucket's subject: no reply awaited (one write, no round trip). The server
        stores it in the order this connection sent it, so a confirmed write sent after it wins."""
        with contextlib.suppress(*TRANSIENT):
            await self.nc.publish(f"$KV.{self.names.results}.{job_id}", state.to_bytes())

    async def ack_all(self, deliveries: list[Delivery]) -> None:
        """One ack message per delivery without a reply each, then one flush (PING/PONG): the server has read
        every ack when it answers. Lost anyway (a server restart just then): redelivered after ack_wait,
        and a redelivered message whose result is stored is acked without running again."""
        try:
            for d in deliveries:
                await d.msg.ack()
            await self.nc.flush(timeout=self.timeout_s)
        except TRANSIENT as exc:
            raise QueueUnavailable(f"acks not confirmed: {exc!r}") from exc

    async def fetch(self, max_messages: int, timeout_s: float) -> list[Delivery]:
        try:
            if self._sub is None:
                self._sub = await self.js.pull_subscribe_bind(
                    durable=self.names.consumer, stream=self.names.stream
                )
            msgs = await self._sub.fetch(max_messages, timeout=timeout_s)
        except (TimeoutError, nats.errors.TimeoutError):  # nothing to take within timeout_s
            return []
        except TRANSIENT as exc:
            raise QueueUnavailable(f"fetch failed: {exc!r}") from exc
        return [NatsDelivery(m, self.timeout_s) for m in msgs]

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        try:
            await self.js.publish(
                self.names.dead_letter_subject,
                delivery.data,
                stream=self.names.dead_letter_stream,
                headers={
                    "Spira-Dead-Reason": reason[:1000].replace("\n", " "),
                    "Spira-Deliveries": str(delivery.attempt),
                    "Spira-Dead-At": f"{time.time():.3f}",
                },
            )
        except TRANSIENT as exc:
            raise QueueUnavailable(f"the dead letter was not stored: {exc!r}") from exc
        await delivery.ack()

    async def dead_letters(self) -> list[dict[str, object]]:
        """Every message of the dead-letter stream with its reason (operators, tests)."""
        out: list[dict[str, object]] = []
        info = await self.js.stream_info(self.names.dead_letter_stream)
        if not info.state.messages:
            return out  # an empty stream reports sequence 0, which no message has
        for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                msg = await self.js.get_msg(self.names.dead_letter_stream, seq)
                headers = msg.headers or {}
                out.append(
                    {
                        "data": msg.data,
                        "reason": headers.get("Spira-Dead-Reason", ""),
                        "deliveries": int(headers.get("Spira-Deliveries", "0") or 0),
                    }
                )
        return out

    async def pending(self) -> dict[str, int]:
        """Messages in the job stream and the consumer's counts (what KEDA's scaler reads)."""
        stream = await self.js.stream_info(self.names.stream)
        consumer = await self.js.consumer_info(self.names.stream, self.names.consumer)
        return {
            "messages": int(stream.state.messages),
            "pending": int(consumer.num_pending or 0),
            "ack_pending": int(consumer.num_ack_pending or 0),
            "redelivered": int(consumer.num_redelivered or 0),
        }

    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def close(self) -> None:
        """Everything the caller needed is confirmed (publishes, writes and acks wait for the server):
        close at once, without draining the pull subscription's outstanding request."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.nc.close(), 5)


def dead_letter_summary(letters: list[dict[str, object]]) -> str:
    return json.dumps([{k: v for k, v in d.items() if k != "data"} for d in letters])
