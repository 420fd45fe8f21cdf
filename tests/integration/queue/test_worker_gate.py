"""The worker gate on a real NATS JetStream: the live workers take and ack every job from the work queue,
the gate's mirror still holds copies, and the new Worker run as the preview consumer is judged against the
live results, without publishing, acking or writing anything live (serving.worker_gate)."""

from __future__ import annotations

import asyncio
import io
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from infra.environments import declared
from serving.inference import Predictor
from serving.worker import Worker
from serving.worker_gate import PreviewJobQueue, preview_stream, run_gate
from spira.stack.config import StackConfig
from spira.stack.nats import NatsService
from spira.stack.net import wait_until
from spira.stack.private import free_stack_ports, private_home
from spira_core.model import ModelBundle, SpiraConvV2, load_bundle, save_bundle
from spira_core.params import FeatureParams
from spira_core.queue import DONE, Job, QueueNames
from spira_core.queue.nats import NatsJobQueue
from spira_core.worker_gate import DISAGREED, PASSED, GateRules
from tests.fakes.queue import FakeRecordings

pytestmark = pytest.mark.integration
JOBS = 6


def _predictor(tmp: Path, seed: int, version: str) -> Predictor:
    torch.manual_seed(seed)
    params = FeatureParams()
    save_bundle(ModelBundle(SpiraConvV2(input_frames=params.input_frames), params, 0.5, {}), tmp / str(seed))
    return Predictor.from_bundle(load_bundle(tmp / str(seed)), version)


def _wav(i: int) -> bytes:
    rate = (16_000, 44_100, 48_000)[i % 3]
    t = np.arange(int(rate * (2.5 + 0.3 * i))) / rate
    tone = 0.3 * np.sin(2 * np.pi * (150 + 20 * i) * t) + 0.02 * np.random.default_rng(i).standard_normal(
        len(t)
    )
    out = io.BytesIO()
    sf.write(out, tone.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[int, Predictor]:
    """Two models announced as the same version 7: seed 1 (the live one) and seed 2 (other weights)."""
    tmp = tmp_path_factory.mktemp("bundles")
    return {seed: _predictor(tmp, seed, "7") for seed in (1, 2)}


@pytest.fixture(scope="module")
def nats_url():
    home = private_home()
    nats = NatsService(StackConfig.load(home, **free_stack_ports()))
    proc = nats.process()
    try:
        nats.write_config()
        proc.start()
        assert wait_until(nats.healthy, 20), proc.log_tail()
        # the operator's user: each test names streams of its own, outside the workloads' permissions
        yield nats.operator_url
    finally:
        proc.stop()
        shutil.rmtree(home, ignore_errors=True)


async def _live_then_gate(
    url: str, names: QueueNames, active: Predictor, preview: Predictor, rules: GateRules
):
    recordings = FakeRecordings()
    live = await NatsJobQueue.connect(url, names, "live")
    gate_nc = await __import__("nats").connect(url)
    try:
        # the gate's standing mirror exists before the burst (its first run created it)
        first = await PreviewJobQueue(gate_nc.jetstream(), names).open()
        await first.close()
        jobs = []
        for i in range(JOBS):
            data = _wav(i)
            job = Job.of_upload(names, data, f"visit-{i}")
            recordings.put(job.object_key, data)
            await live.enqueue(job)
            jobs.append(job)
        # the mirror copies asynchronously: the live workers start once it holds every job, so a slow host
        # cannot let them ack a job away before its copy exists (in a cluster a missed copy lowers the sample)
        js = gate_nc.jetstream()
        copied = time.monotonic() + 120
        while (
            await js.stream_info(preview_stream(names))
        ).state.messages < JOBS and time.monotonic() < copied:
            await asyncio.sleep(0.1)
        stop = asyncio.Event()
        worker = Worker(active, live, recordings, names)
        task = asyncio.create_task(worker.run(stop))
        deadline = time.monotonic() + 300  # a wait, not a timing assertion: a loaded CI host is slow
        while time.monotonic() < deadline:
            states = [await live.state(j.job_id) for j in jobs]
            if all(s is not None and s.status == DONE for s in states):
                break
            await asyncio.sleep(0.1)
        stop.set()
        await task
        live_before = {j.job_id: (await live.state(j.job_id)).to_bytes() for j in jobs}
        queue = await PreviewJobQueue(gate_nc.jetstream(), names).open()
        verdict = await run_gate(preview, queue, recordings, rules, wait_s=300, poll_s=0.2)
        await queue.close()
        js = gate_nc.jetstream()
        left = (await js.stream_info(names.stream)).state.messages
        mirrored = (await js.stream_info(preview_stream(names))).state.messages
        live_after = {j.job_id: (await live.state(j.job_id)).to_bytes() for j in jobs}
        return verdict, left, mirrored, live_before == live_after, queue
    finally:
        await live.close()
        await gate_nc.close()


def _names(stream: str) -> QueueNames:
    names = QueueNames.from_secret(declared().queue.secret_value("local"))
    return QueueNames(**{**names.__dict__, "stream": stream, "results": f"{stream}_RESULTS",
                         "subject": f"{stream.lower()}.jobs", "dead_letter_stream": f"{stream}_DEAD",
                         "dead_letter_subject": f"{stream.lower()}.dead", "consumer": "workers"})  # fmt: skip


def test_a_preview_of_the_same_worker_and_model_passes_on_copies_of_jobs_the_live_workers_took(
    nats_url, tmp_path
):
    model = _predictor(tmp_path, seed=1, version="7")
    names = _names("GATE_SAME")
    verdict, left, mirrored, live_untouched, queue = asyncio.run(
        _live_then_gate(nats_url, names, model, model, GateRules("7", min_jobs=JOBS))
    )
    assert left == 0, "the live workers acked every job away from the work queue"
    assert mirrored == JOBS, "the mirror kept a copy of each"
    assert (verdict.exit_code, verdict.compared, verdict.same_model) == (PASSED, JOBS, JOBS), (
        verdict.to_json()
    )
    assert live_untouched and len(queue.states) == JOBS and queue.dead == {}


def test_a_preview_whose_answers_differ_for_the_same_model_version_fails(nats_url, models):
    names = _names("GATE_DIFF")
    verdict, *_ = asyncio.run(
        _live_then_gate(
            nats_url,
            names,
            models[1],
            models[2],
            GateRules("7", min_jobs=JOBS),
        )
    )
    assert verdict.exit_code == DISAGREED and verdict.disagreements
    assert all("probability" in d.reason for d in verdict.disagreements), verdict.to_json()
