"""The queue's NATS users on the real server (infra/queue_auth.py): no anonymous client, and each workload
only what it needs. The intake publishes jobs and cannot take them; a worker takes jobs, stores states and
dead-letters, and cannot publish a job; neither can delete a stream. The server says why (its
"Permissions Violation" error), and the refused operation does not happen."""

from __future__ import annotations

import asyncio
import shutil

import nats
import nats.errors
import pytest

from infra.environments import declared
from spira.secrets.nats_users import with_user
from spira.stack.config import StackConfig
from spira.stack.nats import NatsService
from spira.stack.net import wait_until
from spira.stack.private import free_stack_ports, private_home
from spira_core.queue import Job, JobState, QueueNames
from spira_core.queue.nats import NatsJobQueue

pytestmark = pytest.mark.integration

NAMES = QueueNames.from_secret(declared().queue.secret_value("local"))


@pytest.fixture(scope="module")
def nats_server():
    home = private_home()
    service = NatsService(StackConfig.load(home, **free_stack_ports()))
    proc = service.process()
    try:
        service.write_config()
        proc.start()
        assert wait_until(service.healthy, 20), proc.log_tail()
        yield service
    finally:
        proc.stop()
        shutil.rmtree(home, ignore_errors=True)


def _url(server: NatsService, user: str) -> str:
    return with_user(server.url, user, server.users()[user])


async def _as(url: str, errors: list[str]) -> NatsJobQueue:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(url, name="test", connect_timeout=2, error_cb=on_error, max_reconnect_attempts=0)
    queue = NatsJobQueue(nc, NAMES, timeout_s=2.0)
    await queue.ensure()  # what every workload does at start: allowed to both
    return queue


def test_a_client_without_a_user_or_with_a_wrong_password_is_refused(nats_server: NatsService) -> None:
    async def connect(url: str) -> None:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
        await nc.close()

    for url in (nats_server.url, with_user(nats_server.url, "intake", "guessed")):
        with pytest.raises((nats.errors.Error, OSError), match=r"(?i)authorization"):
            asyncio.run(connect(url))


def test_the_intake_publishes_jobs_but_cannot_take_them_or_dead_letter(nats_server: NatsService) -> None:
    errors: list[str] = []
    job = Job.of_upload(NAMES, b"a recording", "auth-test-1")

    async def run() -> tuple[bool, int, int]:
        intake = await _as(_url(nats_server, "intake"), errors)
        operator = await _as(nats_server.operator_url, [])
        try:
            _, published = await intake.enqueue(job)
            before = (await operator.js.stream_info(NAMES.dead_letter_stream)).state.messages
            try:
                taken = await intake.fetch(1, 1.0)  # denied: no messages come (or the request fails)
            except Exception:
                taken = []
            assert taken == []
            with pytest.raises(Exception):  # noqa: B017 (denied: the request gets no reply)
                await intake.js.publish(NAMES.dead_letter_subject, b"x", stream=NAMES.dead_letter_stream)
            with pytest.raises(Exception):  # noqa: B017 (denied: the request gets no reply)
                await intake.js.delete_stream(NAMES.stream)
            after = (await operator.js.stream_info(NAMES.dead_letter_stream)).state.messages
            jobs = (await operator.js.stream_info(NAMES.stream)).state.messages
            return published, after - before, jobs
        finally:
            await intake.close()
            await operator.close()

    published, dead_added, jobs = asyncio.run(run())
    assert published and dead_added == 0 and jobs >= 1  # the job is queued, nothing was taken or deleted
    assert any("permissions violation" in e.lower() for e in errors), errors


def test_a_worker_takes_jobs_and_stores_states_but_cannot_publish_a_job(nats_server: NatsService) -> None:
    errors: list[str] = []
    job = Job.of_upload(NAMES, b"another recording", "auth-test-2")

    async def run() -> tuple[int, int]:
        intake = await _as(_url(nats_server, "intake"), [])
        worker = await _as(_url(nats_server, "worker"), errors)
        operator = await _as(nats_server.operator_url, [])
        try:
            await intake.enqueue(job)
            before = (await operator.js.stream_info(NAMES.stream)).state.last_seq
            with pytest.raises(Exception):  # noqa: B017 (denied: the request gets no reply)
                await worker.js.publish(NAMES.subject, b"forged", headers={"Nats-Msg-Id": "forged-1"})
            forged = (await operator.js.stream_info(NAMES.stream)).state.last_seq - before
            taken = 0
            for delivery in await worker.fetch(10, 2.0):
                await worker.put_state(Job.from_bytes(delivery.data).job_id, JobState("done", {"p": 1}))
                await delivery.ack()
                taken += 1
            return forged, taken
        finally:
            for q in (intake, worker, operator):
                await q.close()

    forged, taken = asyncio.run(run())
    assert forged == 0 and taken >= 1
    assert any("permissions violation" in e.lower() for e in errors), errors
