"""The stack's NATS server on its own: healthy with JetStream, and a queued job survives its restart."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from infra.environments import declared
from spira.stack.config import StackConfig
from spira.stack.nats import NatsService
from spira.stack.net import wait_until
from spira.stack.private import free_stack_ports, private_home
from spira_core.queue import Job, QueueNames
from spira_core.queue.nats import NatsJobQueue

pytestmark = pytest.mark.integration


def test_a_job_queued_before_a_nats_restart_is_delivered_after_it() -> None:
    home = private_home()
    nats = NatsService(StackConfig.load(home, **free_stack_ports()))
    names = QueueNames.from_secret(declared().queue.secret_value("local"))
    proc = nats.process()
    try:
        nats.write_config()
        proc.start()
        assert wait_until(nats.healthy, 20), proc.log_tail()
        job = Job.of_upload(names, b"a recording", "visit-7")

        async def publish() -> tuple[bool, bool]:
            queue = await NatsJobQueue.connect(nats.operator_url, names, "test")
            try:
                return (await queue.enqueue(job))[1], (await queue.enqueue(job))[1]
            finally:
                await queue.close()

        assert asyncio.run(publish()) == (True, False)  # the same key twice: one message
        proc.stop()
        assert not nats.answering()
        proc.start()
        assert wait_until(nats.healthy, 20), proc.log_tail()

        async def consume() -> list[bytes]:
            queue = await NatsJobQueue.connect(nats.operator_url, names, "test")
            try:
                deliveries = await queue.fetch(10, 2.0)
                for d in deliveries:
                    await d.ack()
                return [d.data for d in deliveries]
            finally:
                await queue.close()

        assert asyncio.run(consume()) == [job.to_bytes()]
    finally:
        proc.stop()
        shutil.rmtree(home, ignore_errors=True)
