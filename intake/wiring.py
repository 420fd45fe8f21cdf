"""One wiring function for the intake: the Vault contract (VAULT_ADDR, VAULT_ROLE, VAULT_SECRET_PATH) →
its secret → the archive bucket, NATS, the queue's names and the check of clients' tokens (Vault's
published keys) → an IntakeRuntime; `serve` runs it."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping

from intake.app import IntakeRuntime, create_app
from spira_core.objects import S3Recordings
from spira_core.queue import QueueNames
from spira_core.queue.nats import NatsJobQueue


async def build_runtime(environ: Mapping[str, str] | None = None) -> IntakeRuntime:
    from spira_core.client_auth import verifier_from_env
    from spira_core.settings import cached_service_secret

    env = os.environ if environ is None else environ
    secret = cached_service_secret(env)
    values = await asyncio.to_thread(secret.get)
    names = QueueNames.from_secret(values["queue"])
    # clients' tokens checked against the keys of the Vault this pod logs in to (fetched now, then refreshed)
    verifier = await asyncio.to_thread(verifier_from_env, env)
    queue = await NatsJobQueue.connect(values["nats_url"], names, name="spira-intake")
    return IntakeRuntime(queue=queue, recordings=S3Recordings(secret), names=names, verifier=verifier)


def serve(port: int, host: str = "127.0.0.1", environ: Mapping[str, str] | None = None) -> None:
    import uvicorn

    holder: dict[str, IntakeRuntime] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        holder["runtime"] = await build_runtime(environ)
        try:
            yield
        finally:
            await holder["runtime"].queue.close()

    app = create_app(lambda: holder["runtime"], lifespan=lifespan)
    uvicorn.run(
        app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=10
    )
