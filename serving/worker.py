"""The queue worker (docs/queue.md): the model image's second entry point, same bundle, same Predictor.

It pulls jobs from the durable consumer, reads each recording from the archive, cuts it into windows as
/predict does and runs the windows of every message it holds as one batch through the model (the GPU when
present, else the CPU fast path: serving.inference.best_window_model). Each result is written to the
results bucket, and the message is acked only once the bucket confirmed the write; a redelivered message
whose result exists is acked without running again. A recording /predict would refuse (a 4xx) ends as a
failed job with that code. What can never succeed (not a job; its recording missing after every retry;
max_deliver deliveries) goes to the dead-letter stream with its reason. SIGTERM: no new fetch, the held
batch is finished and acked. SIGKILL: the held messages come back after ack_wait.

    python -m serving.worker                   # a pod: the pinned BentoML model, the Vault contract
    spira worker --model VERSION_OR_ALIAS      # the local stack
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from serving.inference import Predictor, Prepared
from spira_core.objects import ObjectMissing, ObjectStoreError, Recordings
from spira_core.queue import (
    DONE,
    FAILED,
    FINISHED,
    RUNNING,
    Delivery,
    Job,
    JobQueue,
    JobState,
    PoisonMessage,
    QueueNames,
    QueueUnavailable,
)
from spira_core.uploads import Rejected

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    done: int = 0
    failed: int = 0
    dead: int = 0
    retried: int = 0
    skipped: int = 0  # redeliveries whose result was already stored
    windows: int = 0
    batches: int = 0
    busy_s: float = 0.0


@dataclass
class _Held:
    delivery: Delivery
    job: Job
    data: bytes | None = None  # the recording, once read


READ_THREADS = 4


@dataclass
class Worker:
    predictor: Predictor
    queue: JobQueue
    recordings: Recordings
    names: QueueNames
    max_messages: int = 32
    fetch_timeout_s: float = 1.0
    stats: WorkerStats = field(default_factory=WorkerStats)
    # the one thread that decodes and runs the model (the core's CPU work, as the in-process loop does it,
    # in order); reads and NATS wait elsewhere, so they never take turns with it on the core
    compute: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="spira-compute")
    )
    # the recordings' GETs: a few threads are enough to keep a batch's reads ahead of its compute (32 reads
    # of ~2 ms wall against ~250 ms of compute), and fewer threads take fewer turns on the worker's core
    readers: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(READ_THREADS, thread_name_prefix="spira-read")
    )
    clock: Callable[[], float] = time.perf_counter
    _finished_at: float = field(
        default=0.0, init=False, repr=False
    )  # when the last batch's results were stored and acked (the clock's)

    async def run(self, stop: asyncio.Event) -> WorkerStats:
        """Fetch and process until `stop` is set; every batch in hand is always finished.

        The compute thread never waits for the loop. A batch's decode and model call is queued on it as soon
        as its recordings are read (behind the batch computing, if any), and a task of its own stores that
        batch's results and acks them while the next batch computes. The loop fetches and reads the batch
        after next only once the previous compute is done, so one batch at most is read ahead. Each batch
        acks only its own stored results; the waits on NATS and the object store hide behind the compute,
        which stays busy as long as the reads keep up."""
        storing: list[asyncio.Task] = []  # per batch: its compute awaited, then its results stored and acked
        computing: asyncio.Future | None = None  # the batch queued last on the compute thread
        busy_since: float | None = None
        try:
            while not stop.is_set():
                try:
                    deliveries = await self.queue.fetch(self.max_messages, self.fetch_timeout_s)
                except QueueUnavailable as exc:
                    log.warning("queue unavailable, retrying: %s", exc)
                    await asyncio.sleep(0.5)
                    continue
                if deliveries:
                    busy_since = self.clock() if busy_since is None else busy_since
                    held = await self.take(deliveries)
                    queued = self._compute(held) if held else None
                    if computing is not None:  # one batch read ahead at most
                        await computing
                    computing = queued
                    if queued is not None:
                        storing.append(asyncio.create_task(self._store(queued)))
                elif storing:  # nothing more to take: the last batches finish
                    await asyncio.gather(*storing)
                    computing = None
                storing = _reaped(storing)
                if not storing and busy_since is not None:
                    # busy until the last batch was acked, not until the empty fetch that found it so
                    # (a fetch that finds nothing waits out its timeout while that batch finishes)
                    self.stats.busy_s += max(self._finished_at - busy_since, 0.0)
                    busy_since = None
        finally:
            # SIGTERM: the batches in hand are finished and acked
            for outcome in await asyncio.gather(*storing, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    log.error("a batch failed while stopping: %r", outcome)
            if busy_since is not None:
                self.stats.busy_s += self.clock() - busy_since
        return self.stats

    async def process(self, deliveries: list[Delivery]) -> None:
        """One batch, start to end."""
        held = await self.take(deliveries)
        if held:
            await self._store(self._compute(held))

    async def take(self, deliveries: list[Delivery]) -> list[_Held]:
        """Jobs parsed (poison dead-lettered), known results acked, `running` announced, each recording read
        (a missing one retried or dead-lettered): the jobs ready for the compute thread."""
        held: list[_Held] = []
        for d in deliveries:
            try:
                held.append(_Held(d, Job.from_bytes(d.data)))
            except PoisonMessage as exc:
                await self._dead(d, str(exc))
        held = await self._skip_known(held)
        for h in held:  # advisory and unconfirmed: one publish each, no round trip (JobQueue.announce_state)
            await self.queue.announce_state(h.job.job_id, JobState(RUNNING, attempts=h.delivery.attempt))
        return [h for h in await asyncio.gather(*(self._read(h) for h in held)) if h is not None]

    def _compute(self, held: list[_Held]) -> asyncio.Future:
        """The batch's decode and model call, queued on the compute thread."""
        return asyncio.get_running_loop().run_in_executor(self.compute, self._predict_all, held)

    async def _store(self, computing: asyncio.Future) -> None:
        """Once computed, each result stored and the stored ones acked."""
        await self._finish_all(await computing)
        self._finished_at = self.clock()

    def _predict_all(self, held: list[_Held]) -> list[tuple[_Held, JobState]]:
        """The compute thread's work, step for step the in-process batched loop's: each recording prepared
        (one /predict would refuse, a 4xx, is its job's answer: failed), then the windows of every job as one
        model call."""
        results: list[tuple[_Held, JobState]] = []
        ready: list[tuple[_Held, Prepared]] = []
        for h in held:
            data, h.data = h.data, None  # the body is not kept past its decode
            try:
                ready.append((h, self.predictor.prepare(data)))
            except Rejected as exc:  # what /predict answers 4xx: the job's answer, not a poison message
                error = {"error": exc.code, "detail": exc.detail}
                results.append((h, JobState(FAILED, error=error, attempts=h.delivery.attempt)))
        if not ready:
            return results
        answers = self.predictor.predict_prepared([p for _, p in ready])
        self.stats.windows += sum(len(p.windows) for _, p in ready)
        self.stats.batches += 1
        return results + [
            (h, JobState(DONE, answer, attempts=h.delivery.attempt))
            for (h, _), answer in zip(ready, answers, strict=True)
        ]

    async def _skip_known(self, held: list[_Held]) -> list[_Held]:
        """Redeliveries whose result is stored: acked without running. A first delivery cannot have one (the
        intake publishes no job whose result exists), so only redeliveries cost a read of the bucket."""
        again = [h for h in held if h.delivery.attempt > 1]
        if not again:
            return held
        known = await asyncio.gather(*(self.queue.state(h.job.job_id) for h in again), return_exceptions=True)
        drop = set()
        for h, state in zip(again, known, strict=True):
            if isinstance(state, QueueUnavailable):
                log.warning("job %s left for redelivery: %s", h.job.job_id, state)
                drop.add(id(h))
            elif isinstance(state, BaseException):
                raise state
            elif state is not None and state.status in FINISHED:
                self.stats.skipped += 1
                drop.add(id(h))
                try:
                    await h.delivery.ack()
                except QueueUnavailable as exc:
                    log.warning("job %s not acked, it comes back: %s", h.job.job_id, exc)
        return [h for h in held if id(h) not in drop]

    async def _read(self, h: _Held) -> _Held | None:
        """The recording read (the GET waits in a reader thread); missing after retries: redelivered
        later or dead-lettered."""
        try:
            h.data = await asyncio.get_running_loop().run_in_executor(
                self.readers, self.recordings.get, h.job.object_key
            )
            return h
        except (ObjectMissing, ObjectStoreError) as exc:
            await self._retry_or_dead(h, f"{type(exc).__name__}: {exc}")
        return None

    async def _finish_all(self, results: list[tuple[_Held, JobState]]) -> None:
        """Every state stored (each write confirmed), then the stored ones acked together: never an ack
        for an unstored result."""
        stored = await asyncio.gather(
            *(self.queue.put_state(h.job.job_id, state) for h, state in results), return_exceptions=True
        )
        durable = []
        for (h, state), outcome in zip(results, stored, strict=True):
            if isinstance(outcome, QueueUnavailable):  # not acked: redelivered after ack_wait
                log.warning("job %s not acked, it comes back: %s", h.job.job_id, outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                durable.append((h, state))
        if not durable:
            return
        try:
            await self.queue.ack_all([h.delivery for h, _ in durable])
        except QueueUnavailable as exc:  # results kept; the messages come back and are acked then
            log.warning("%d acks not confirmed, they come back: %s", len(durable), exc)
            return
        for _, state in durable:
            if state.status == DONE:
                self.stats.done += 1
            else:
                self.stats.failed += 1

    async def _retry_or_dead(self, h: _Held, reason: str) -> None:
        d = h.delivery
        if d.attempt < self.names.max_deliver:
            self.stats.retried += 1
            await d.retry_later(self.names.retry_delay_s(d.attempt))
            return
        reason = f"failed {d.attempt} deliveries (max_deliver): {reason}"
        try:
            await self.queue.put_state(
                h.job.job_id,
                JobState(FAILED, error={"error": "dead_letter", "detail": reason}, attempts=d.attempt),
            )
        except QueueUnavailable:
            return
        await self._dead(d, reason)

    async def _dead(self, d: Delivery, reason: str) -> None:
        try:
            await self.queue.dead_letter(d, reason)
            self.stats.dead += 1
            log.warning("dead letter: %s", reason)
        except QueueUnavailable as exc:
            log.warning("dead letter not stored, the message comes back: %s", exc)


def _reaped(tasks: list[asyncio.Task]) -> list[asyncio.Task]:
    """The tasks not done yet; a done one that failed raises its error here."""
    for task in tasks:
        if task.done():
            task.result()
    return [task for task in tasks if not task.done()]


async def run_worker(
    predictor: Predictor, environ: Mapping[str, str] | None = None, stop: asyncio.Event | None = None
) -> WorkerStats:
    """The Vault contract → the worker's secret → NATS, the archive and the queue's names; run until
    SIGTERM/SIGINT (or `stop`)."""
    from spira_core.objects import S3Recordings
    from spira_core.queue.nats import NatsJobQueue
    from spira_core.settings import cached_service_secret

    secret = cached_service_secret(os.environ if environ is None else environ)
    values = await asyncio.to_thread(secret.get)
    names = QueueNames.from_secret(values["queue"])
    queue = await NatsJobQueue.connect(values["nats_url"], names, name="spira-worker")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(predictor, queue, S3Recordings(secret), names)
    log.warning("worker ready: model %s, consumer %s", predictor.model_version, names.consumer)
    print("worker ready", flush=True)
    try:
        return await worker.run(stop)
    finally:
        await queue.close()


def serve(predictor: Predictor) -> WorkerStats:
    """run_worker until SIGTERM on uvloop when it is installed (nats-py's protocol, its timers and the
    thread wake-ups run on a loop written in C), else on asyncio's own loop: the same code either way.
    One prediction first, as the server's readiness does: the first batch pays no set-up."""
    from serving.wiring import torch_threads, warm_up
    from spira_core.cpus import usable_cpus

    torch_threads(usable_cpus())
    warm_up(predictor)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the lock installs it
        return asyncio.run(run_worker(predictor))
    return uvloop.run(run_worker(predictor))


def main() -> None:
    import argparse
    from pathlib import Path

    from serving.pin import read_model_meta, verified_bundle_dir
    from spira_core.model import load_bundle

    parser = argparse.ArgumentParser(prog="python -m serving.worker")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="the model's folder (default: the pinned BentoML model)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    model_dir = args.model_dir
    if model_dir is None:  # the image: the Bento's model store holds exactly the pinned model
        import bentoml

        from serving.pin import ModelPin

        model_dir = Path(bentoml.models.get(ModelPin.read().bento_tag).path)
    bundle = load_bundle(verified_bundle_dir(model_dir))
    predictor = Predictor.from_bundle(bundle, read_model_meta(model_dir)["model_version"])
    stats = serve(predictor)
    log.warning("worker stopped: %s", stats)


if __name__ == "__main__":
    main()
