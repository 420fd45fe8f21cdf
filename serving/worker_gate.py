"""The worker gate's preview consumer (docs/queue.md): the NEW worker image runs its own Worker (batching,
refusals, dead letters: the code that would go live) on copies of live jobs, and its answers are compared
with what the active workers stored for the same jobs (spira_core.worker_gate). Nothing live is touched:

- the jobs come from `<stream>_PREVIEW`, a JetStream mirror of the job stream that the gate keeps (created
  on its first run, then standing, bounded by age). A mirror reads the work queue without taking from it:
  the live consumer still gets, and acks away, every job;
- the preview's states and dead letters stay in this process (PreviewJobQueue), never in the live results
  bucket, which the gate only reads.

    python -m serving.worker_gate --model-dir DIR --expect-model-version V [--min-jobs N] [--wait-s S]

Exit 0: passed; 1: a disagreement; 2: could not run; 3: too few finished jobs within --wait-s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterable, Mapping

import nats
import nats.errors
import nats.js.errors
from nats.js import api

from serving.inference import Predictor
from serving.worker import Worker
from spira_core.objects import Recordings
from spira_core.queue import Delivery, Job, JobQueue, JobState, PoisonMessage, QueueNames, QueueUnavailable
from spira_core.queue.nats import TRANSIENT, NatsDelivery
from spira_core.tls import nats_tls
from spira_core.worker_gate import COULD_NOT_RUN, GateRules, Verdict, judge

log = logging.getLogger(__name__)
PREVIEW_SUFFIX = "_PREVIEW"
# What the mirror keeps: enough recent jobs for a gate run, bounded so it never grows with traffic.
MIRROR_MAX_AGE_S = 6 * 3600


def preview_stream(names: QueueNames) -> str:
    return f"{names.stream}{PREVIEW_SUFFIX}"


def mirror_config(names: QueueNames) -> api.StreamConfig:
    return api.StreamConfig(
        name=preview_stream(names),
        mirror=api.StreamSource(name=names.stream),
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        max_age=MIRROR_MAX_AGE_S,
        num_replicas=names.replicas,
    )


async def ensure_mirror(js, names: QueueNames) -> None:
    """The standing mirror of the job stream (idempotent); refuses a stream of that name that is not it."""
    try:
        await js.add_stream(mirror_config(names))
    except nats.js.errors.BadRequestError:
        info = await js.stream_info(preview_stream(names))
        mirror = info.config.mirror
        if mirror is None or mirror.name != names.stream:
            raise RuntimeError(
                f"stream {preview_stream(names)} exists but is not a mirror of {names.stream}"
            ) from None


class PreviewJobQueue(JobQueue):
    """The new worker's queue during the gate: jobs from the mirror, its states and dead letters kept here."""

    def __init__(self, js, names: QueueNames, timeout_s: float = 5.0) -> None:
        self.js = js
        self.names = names
        self.timeout_s = timeout_s
        self.states: dict[str, JobState] = {}
        self.dead: dict[str, str] = {}
        self._sub = None
        self._live_results = None

    async def open(self) -> PreviewJobQueue:
        await ensure_mirror(self.js, self.names)
        # An ephemeral consumer over everything the mirror holds; the server drops it once the gate is gone.
        self._sub = await self.js.pull_subscribe(
            self.names.subject,
            durable=None,
            stream=preview_stream(self.names),
            config=api.ConsumerConfig(
                ack_policy=api.AckPolicy.EXPLICIT,
                ack_wait=self.names.ack_wait_s,
                deliver_policy=api.DeliverPolicy.ALL,
                inactive_threshold=300.0,
            ),
        )
        self._live_results = await self.js.key_value(self.names.results)
        return self

    async def enqueue(self, job: Job) -> tuple[JobState, bool]:
        raise RuntimeError("the worker gate never publishes a job")

    async def state(self, job_id: str) -> JobState | None:
        return self.states.get(job_id)

    async def put_state(self, job_id: str, state: JobState) -> None:
        self.states[job_id] = state

    async def fetch(self, max_messages: int, timeout_s: float) -> list[Delivery]:
        try:
            msgs = await self._sub.fetch(max_messages, timeout=timeout_s)
        except nats.errors.TimeoutError:
            return []
        except TRANSIENT as exc:
            raise QueueUnavailable(f"fetch from the mirror failed: {exc!r}") from exc
        return [NatsDelivery(m, self.timeout_s) for m in msgs]

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        try:
            job_id = Job.from_bytes(delivery.data).job_id
        except PoisonMessage:
            job_id = f"unparsable-{len(self.dead)}"
        self.dead[job_id] = reason
        await delivery.ack()

    async def live_states(self, job_ids: Iterable[str]) -> dict[str, JobState]:
        """What the active workers stored for these jobs (read only)."""
        out = {}
        for job_id in job_ids:
            with contextlib.suppress(nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                entry = await self._live_results.get(job_id)
                if entry.value:
                    out[job_id] = JobState.from_bytes(entry.value)
        return out

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()


async def run_gate(
    predictor: Predictor,
    queue: PreviewJobQueue,
    recordings: Recordings,
    rules: GateRules,
    wait_s: float,
    poll_s: float = 2.0,
) -> Verdict:
    """Run the new Worker on the mirror until enough jobs are compared, one disagrees, or `wait_s` ends."""
    stop = asyncio.Event()
    worker = Worker(predictor, queue, recordings, queue.names)
    task = asyncio.create_task(worker.run(stop))
    deadline = time.monotonic() + wait_s
    verdict = judge({}, {}, {}, rules)
    try:
        while time.monotonic() < deadline and not task.done():
            await asyncio.sleep(poll_s)
            verdict = await _current(queue, rules)
            if verdict.disagreements or verdict.compared >= rules.min_jobs:
                break
    finally:
        stop.set()
        await task
    return await _current(queue, rules)


async def _current(queue: PreviewJobQueue, rules: GateRules) -> Verdict:
    seen = set(queue.states) | set(queue.dead)
    live: Mapping[str, JobState] = await queue.live_states(seen)
    return judge(live, queue.states, queue.dead, rules)


async def _main(predictor: Predictor, rules: GateRules, wait_s: float, environ: Mapping[str, str]) -> int:
    from spira_core.objects import S3Recordings
    from spira_core.settings import cached_service_secret

    secret = cached_service_secret(environ)
    values = await asyncio.to_thread(secret.get)
    names = QueueNames.from_secret(values["queue"])
    nc = await nats.connect(
        values["nats_url"], name="spira-worker-gate", connect_timeout=5, tls=nats_tls(values["nats_url"])
    )
    try:
        queue = await PreviewJobQueue(nc.jetstream(timeout=5.0), names).open()
        verdict = await run_gate(predictor, queue, S3Recordings(secret), rules, wait_s)
        await queue.close()
    finally:
        # close, not drain: every mirrored message the Worker held was acked, and a drain waits out the
        # pull subscription's pending request (30 s) for nothing
        await nc.close()
    print(verdict.to_json(), flush=True)
    return verdict.exit_code


def main() -> None:
    import argparse
    from pathlib import Path

    from serving.pin import read_model_meta, verified_bundle_dir
    from spira_core.model import load_bundle

    parser = argparse.ArgumentParser(prog="python -m serving.worker_gate")
    parser.add_argument("--model-dir", type=Path, required=True, help="the pinned BentoML model's folder")
    parser.add_argument("--expect-model-version", required=True, help="the Rollout's spira.dev/model-version")
    parser.add_argument("--min-jobs", type=int, default=50)
    parser.add_argument("--wait-s", type=float, default=1200.0)
    parser.add_argument("--tolerance", type=float, default=1e-6)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        bundle = load_bundle(verified_bundle_dir(args.model_dir))
        predictor = Predictor.from_bundle(bundle, read_model_meta(args.model_dir)["model_version"])
        rules = GateRules(args.expect_model_version, args.min_jobs, args.tolerance)
        code = asyncio.run(_main(predictor, rules, args.wait_s, os.environ))
    except Exception as exc:  # could not run: fails the gate, with the reason in the Job's log
        log.error("the worker gate could not run: %r", exc)
        code = COULD_NOT_RUN
    raise SystemExit(code)


if __name__ == "__main__":
    main()
