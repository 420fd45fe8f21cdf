"""The worker's rules against fakes of its ports: batches across messages, result before ack, a known
result acked without running, 4xx recordings fail, poison and exhausted retries go to the dead letters."""

from __future__ import annotations

import asyncio
import json
import threading

from serving.worker import Worker
from spira_core.queue import DONE, FAILED, Job, JobState, QueueNames
from tests.fakes.queue import FakeDelivery, FakeJobQueue, FakeRecordings
from tests.fakes.serving import FakeWindowModel, fake_predictor, wav_bytes

NAMES = QueueNames(
    stream="S",
    subject="s.jobs",
    consumer="w",
    dead_letter_stream="D",
    dead_letter_subject="s.dead",
    results="R",
    object_prefix="recordings/",
    ack_wait_s=10,
    max_deliver=3,
    backoff_s=(1.0, 4.0),
    duplicate_window_s=60,
    results_ttl_s=3600,
)


def _worker(queue: FakeJobQueue, store: FakeRecordings) -> tuple[Worker, FakeWindowModel]:
    predictor = fake_predictor()
    return Worker(predictor, queue, store, NAMES), predictor.model


def _job(store: FakeRecordings, data: bytes, key: str) -> Job:
    job = Job.of_upload(NAMES, data, key)
    store.put(job.object_key, data)
    return job


def _queued(queue: FakeJobQueue, store: FakeRecordings, n: int) -> list[Job]:
    """n jobs, their recordings stored, their messages on the queue."""
    jobs = [_job(store, wav_bytes(seed=i), f"k{i}") for i in range(n)]
    queue.messages = [j.to_bytes() for j in jobs]
    return jobs


def test_windows_of_several_messages_run_as_one_batch_and_each_result_is_stored_before_its_ack() -> None:
    queue, store = FakeJobQueue(), FakeRecordings()
    worker, model = _worker(queue, store)
    jobs = [_job(store, wav_bytes(seconds=s, seed=i), f"k{i}") for i, s in enumerate((1.5, 5.0, 9.0))]
    deliveries = [FakeDelivery(j.to_bytes(), log=queue.log) for j in jobs]
    asyncio.run(worker.process(deliveries))
    assert len(model.calls) == 1 and model.calls[0] == sum(
        queue.states[j.job_id].result["windows"] for j in jobs
    )
    for job, delivery in zip(jobs, deliveries, strict=True):
        assert delivery.acked and queue.states[job.job_id].status == DONE
        stored = queue.log.index(("state", (job.job_id, DONE)))
        assert stored < queue.log.index(("ack", delivery.data))
        single = worker.predictor.predict_bytes(store.get(job.object_key))
        assert abs(queue.states[job.job_id].result["probability"] - single["probability"]) <= 1e-6


def test_a_redelivered_message_whose_result_is_stored_is_acked_without_running_the_model() -> None:
    queue, store = FakeJobQueue(), FakeRecordings()
    worker, model = _worker(queue, store)
    job = _job(store, wav_bytes(), "k")
    queue.states[job.job_id] = JobState(DONE, {"probability": 0.5})
    delivery = FakeDelivery(job.to_bytes(), attempt=2)
    asyncio.run(worker.process([delivery]))
    assert delivery.acked and model.calls == [] and worker.stats.skipped == 1


def test_a_recording_predict_would_refuse_ends_as_a_failed_job_with_its_code_not_a_dead_letter() -> None:
    queue, store = FakeJobQueue(), FakeRecordings()
    worker, _ = _worker(queue, store)
    job = _job(store, b"RIFF" + b"\x00" * 100, "k")
    delivery = FakeDelivery(job.to_bytes())
    asyncio.run(worker.process([delivery]))
    state = queue.states[job.job_id]
    assert state.status == FAILED and state.error["error"] in {"unsupported_audio", "undecodable"}
    assert delivery.acked and queue.dead == []


def test_a_message_that_is_not_a_job_goes_to_the_dead_letters_with_its_reason() -> None:
    queue, store = FakeJobQueue(), FakeRecordings()
    worker, _ = _worker(queue, store)
    delivery = FakeDelivery(json.dumps({"hello": 1}).encode())
    asyncio.run(worker.process([delivery]))
    assert [reason.split(":")[0] for _, reason in queue.dead] == ["not a job"] and delivery.acked


def test_a_missing_recording_is_retried_with_the_declared_backoff_then_dead_lettered_at_max_deliver() -> None:
    queue, store = FakeJobQueue(), FakeRecordings()
    worker, _ = _worker(queue, store)
    job = Job.of_upload(NAMES, b"never stored", "k")
    delays = []
    for attempt in (1, 2):
        delivery = FakeDelivery(job.to_bytes(), attempt=attempt)
        asyncio.run(worker.process([delivery]))
        delays.append(delivery.retry_delay)
        assert not delivery.acked
    assert delays == [1.0, 4.0]
    last = FakeDelivery(job.to_bytes(), attempt=NAMES.max_deliver)
    asyncio.run(worker.process([last]))
    assert last.acked and len(queue.dead) == 1 and "max_deliver" in queue.dead[0][1]
    assert queue.states[job.job_id].status == FAILED


def test_a_result_the_queue_did_not_confirm_is_never_acked() -> None:
    queue, store = FakeJobQueue(), FakeRecordings()
    worker, _ = _worker(queue, store)
    job = _job(store, wav_bytes(), "k")
    delivery = FakeDelivery(job.to_bytes())

    async def run() -> None:
        original = queue.put_state

        async def failing_done(job_id, state):
            if state.status == DONE:
                queue.unavailable = 1
            await original(job_id, state)

        queue.put_state = failing_done
        await worker.process([delivery])

    asyncio.run(run())
    assert not delivery.acked and worker.stats.done == 0


def test_sigterm_stops_fetching_after_the_batch_in_hand() -> None:
    queue, store = FakeJobQueue(), FakeRecordings()
    worker, _ = _worker(queue, store)
    _queued(queue, store, 3)
    worker.max_messages = 2

    async def run() -> None:
        stop = asyncio.Event()
        original = worker.take

        async def take_then_stop(deliveries):
            stop.set()  # the signal arrives while the first batch is in hand
            return await original(deliveries)

        worker.take = take_then_stop
        await worker.run(stop)

    asyncio.run(run())
    assert worker.stats.done == 2 and len(queue.messages) == 1  # finished and acked; the rest not taken


def _run_until_empty(worker: Worker, queue: FakeJobQueue) -> None:
    """Worker.run until a fetch finds the queue empty."""

    async def run() -> None:
        stop = asyncio.Event()
        fetch = queue.fetch

        async def fetch_until_empty(max_messages: int, timeout_s: float):
            got = await fetch(max_messages, timeout_s)
            if not got:
                stop.set()
            return got

        queue.fetch = fetch_until_empty
        await worker.run(stop)

    asyncio.run(run())


class _ReadsSeen(FakeRecordings):
    """Flags when any of the watched recordings is read."""

    def __init__(self) -> None:
        super().__init__()
        self.watch: set[str] = set()
        self.seen = threading.Event()

    def get(self, key: str) -> bytes:
        if key in self.watch:
            self.seen.set()
        return super().get(key)


def test_the_next_batch_is_read_while_the_model_runs_on_the_previous_one_and_each_result_is_stored_before_its_ack() -> (
    None
):
    queue, store = FakeJobQueue(), _ReadsSeen()
    worker, model = _worker(queue, store)
    jobs = [_job(store, wav_bytes(seed=i), f"k{i}") for i in range(4)]
    store.watch = {j.object_key for j in jobs[2:]}
    queue.messages = [j.to_bytes() for j in jobs]
    worker.max_messages = 2
    overlapped: list[bool] = []
    predict = model.predict

    def first_call_waits_for_the_next_reads(windows):
        if not overlapped:  # bounded: without the overlap the reads never come and this records False
            overlapped.append(store.seen.wait(10))
        return predict(windows)

    model.predict = first_call_waits_for_the_next_reads

    _run_until_empty(worker, queue)
    assert overlapped == [True] and len(model.calls) == 2
    for job in jobs:
        assert queue.states[job.job_id].status == DONE
        stored = queue.log.index(("state", (job.job_id, DONE)))
        assert stored < queue.log.index(("ack", job.to_bytes()))
    assert worker.stats.done == 4 and worker.stats.batches == 2


class _ReadThreads(FakeRecordings):
    """Records the thread of every read."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []

    def get(self, key: str) -> bytes:
        self.threads.append(threading.current_thread().name)
        return super().get(key)


def test_decoding_and_the_model_run_in_one_compute_thread_and_the_reads_wait_in_others() -> None:
    queue, store = FakeJobQueue(), _ReadThreads()
    worker, model = _worker(queue, store)
    _queued(queue, store, 6)
    worker.max_messages = 3
    compute_threads: list[str] = []
    prepare, predict = worker.predictor.prepare, model.predict

    def prepare_noting_its_thread(data: bytes):
        compute_threads.append(threading.current_thread().name)
        return prepare(data)

    def predict_noting_its_thread(windows):
        compute_threads.append(threading.current_thread().name)
        return predict(windows)

    worker.predictor.prepare = prepare_noting_its_thread
    model.predict = predict_noting_its_thread

    _run_until_empty(worker, queue)
    assert worker.stats.done == 6 and len(model.calls) == 2
    # six decodes and two model calls, all in the one compute thread (what the in-process loop runs, in
    # order), and none of the six reads in it: a read's wait never takes the compute thread's turn
    assert len(compute_threads) == 8 and len(set(compute_threads)) == 1
    assert compute_threads[0].startswith("spira-compute")
    assert len(store.threads) == 6 and compute_threads[0] not in store.threads


def test_busy_time_ends_when_the_last_batch_is_acked_not_when_the_empty_fetch_after_it_returns() -> None:
    queue, store = FakeJobQueue(), FakeRecordings()
    worker, _ = _worker(queue, store)
    queue.messages = [_job(store, wav_bytes(seed=i), f"k{i}").to_bytes() for i in range(2)]
    now = [100.0]
    worker.clock = lambda: now[0]
    predict = worker.predictor.model.predict

    def one_second_per_model_call(windows):
        now[0] += 1.0
        return predict(windows)

    worker.predictor.model.predict = one_second_per_model_call
    fetch = queue.fetch

    async def empty_fetch_waits_out_its_timeout(max_messages: int, timeout_s: float):
        got = await fetch(max_messages, timeout_s)
        if not got:  # the server holds the pull request for its whole expiry; the batch finishes meanwhile
            for _ in range(1000):
                if worker.stats.done == 2:
                    break
                await asyncio.sleep(0.01)
            now[0] += 30.0
        return got

    queue.fetch = empty_fetch_waits_out_its_timeout
    _run_until_empty(worker, queue)
    assert worker.stats.done == 2 and worker.stats.busy_s == 1.0


def test_the_next_batch_computes_while_the_previous_one_s_results_are_still_being_stored() -> None:
    store = FakeRecordings()
    jobs = [_job(store, wav_bytes(seed=i), f"k{i}") for i in range(4)]
    first = {j.job_id for j in jobs[:2]}
    overlapped: list[bool] = []

    class SlowFirstStores(FakeJobQueue):
        async def put_state(self, job_id: str, state: JobState) -> None:
            if job_id in first and state.status == DONE and not overlapped:  # bounded: without the overlap
                # the second model call never comes first
                for _ in range(500):
                    if len(model.calls) == 2:
                        break
                    await asyncio.sleep(0.02)
                overlapped.append(len(model.calls) == 2)
            await super().put_state(job_id, state)

    queue = SlowFirstStores()
    worker, model = _worker(queue, store)
    queue.messages = [j.to_bytes() for j in jobs]
    worker.max_messages = 2
    _run_until_empty(worker, queue)
    assert overlapped and all(overlapped) and worker.stats.done == 4
    for job in jobs:
        assert queue.log.index(("state", (job.job_id, DONE))) < queue.log.index(("ack", job.to_bytes()))
