"""POST /v1/recordings, GET /v1/jobs/{job_id}, /livez, /readyz. Errors are /predict's JSON {"error", "detail"}."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from spira_core.admission import BodyBudget
from spira_core.client_auth import BearerAuth, TokenVerifier
from spira_core.objects import ObjectStoreError, Recordings
from spira_core.queue import Job, JobQueue, QueueNames, QueueUnavailable
from spira_core.upload_http import (
    MULTIPART_OVERHEAD,
    audio_files,
    body_size,
    error_response,
    read_form,
    require_multipart,
)
from spira_core.uploads import BODY_COPIES, Rejected, UploadLimits, decode_upload

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_SITE_LENGTH = 100
# Who may send recordings: the hospitals' apps (`spira submit`), with the credential Vault issues them
# (infra/vault/clients.py); a valid token of another client kind (gate, intake) is a 403. Checked for every
# /v1/ path before a byte of the body is read; /livez and /readyz stay open for the kubelet.
PROTECTED_PREFIXES = ("/v1/",)
CLIENTS = ("hospital",)


@dataclass
class IntakeRuntime:
    queue: JobQueue
    recordings: Recordings
    names: QueueNames
    limits: UploadLimits = field(default_factory=UploadLimits)
    # how long an upload waits for the queue to come back (a NATS restart) before it is answered 503
    queue_wait_s: float = 15.0
    retry_after_s: int = 2
    # clients' tokens (spira_core.client_auth); None only without Vault (the unit tests' fakes)
    verifier: TokenVerifier | None = None
    accepted: int = 0
    duplicates: int = 0
    bodies: BodyBudget = field(init=False)
    _decoding: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.bodies = BodyBudget(
            self.limits.max_inflight_bytes, self.limits.busy_wait_s, self.limits.retry_after_s
        )
        self._decoding = asyncio.Semaphore(self.limits.max_concurrent_decodes)

    async def validate(self, data: bytes) -> None:
        """/predict's upload rules (spira_core.uploads): a bad upload is a 4xx here, never a job."""
        async with self._decoding:
            await asyncio.to_thread(decode_upload, data, self.limits)

    async def accept(self, data: bytes, key: str | None, site: str, filename: str) -> dict[str, object]:
        try:
            job = Job.of_upload(self.names, data, key, site, filename)
        except ValueError as exc:
            raise Rejected(400, "bad_idempotency_key", str(exc)) from exc
        try:
            await asyncio.to_thread(self.recordings.put, job.object_key, data)
        except ObjectStoreError as exc:
            raise Rejected(
                503, "store_unavailable", f"the recording was not stored: {exc}", self.retry_after_s
            ) from exc
        state, published = await self._enqueue(job)
        if published:
            self.accepted += 1
        else:
            self.duplicates += 1
        return {"job_id": job.job_id, "status_url": f"/v1/jobs/{job.job_id}", "status": state.status}

    async def _enqueue(self, job: Job):
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + self.queue_wait_s, 0.1
        while True:
            try:
                return await self.queue.enqueue(job)
            except QueueUnavailable as exc:
                if loop.time() + delay > deadline:
                    raise Rejected(
                        503, "queue_unavailable", f"the job was not queued: {exc}", self.retry_after_s
                    ) from exc
                await asyncio.sleep(delay)  # the same job id: a publish that did land is not duplicated
                delay = min(delay * 2, 2.0)


def _site(form) -> str:
    site = form.get("site")
    if site is None:
        return ""
    if not isinstance(site, str) or len(site) > MAX_SITE_LENGTH or not site.isprintable():
        raise Rejected(400, "bad_site", f"'site' is a text of at most {MAX_SITE_LENGTH} printable characters")
    return site


def create_app(get_runtime: Callable[[], IntakeRuntime], lifespan=None) -> BearerAuth:
    async def submit(request: Request) -> JSONResponse:
        runtime = get_runtime()
        try:
            require_multipart(request)
            size = body_size(request, runtime.limits.max_bytes + MULTIPART_OVERHEAD)
            async with runtime.bodies.hold(BODY_COPIES * size):
                form = await read_form(request, size, max_files=1)
                try:
                    site = _site(form)
                except Rejected:
                    await form.close()
                    raise
                ((filename, data),) = await audio_files(form, max_files=1)
                await runtime.validate(data)
                answer = await runtime.accept(data, request.headers.get(IDEMPOTENCY_HEADER), site, filename)
            return JSONResponse(answer, status_code=202, headers={"Location": str(answer["status_url"])})
        except Rejected as exc:
            return error_response(exc)

    async def job(request: Request) -> JSONResponse:
        runtime = get_runtime()
        job_id = request.path_params["job_id"]
        try:
            state = await runtime.queue.state(job_id) if len(job_id) == 32 and job_id.isalnum() else None
        except QueueUnavailable as exc:
            return error_response(Rejected(503, "queue_unavailable", str(exc), runtime.retry_after_s))
        if state is None:
            return JSONResponse({"error": "unknown_job", "detail": f"no job {job_id}"}, status_code=404)
        return JSONResponse(state.answer(job_id))

    async def livez(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        runtime = get_runtime()
        ok = getattr(runtime.queue, "connected", lambda: True)()
        ok = ok and (runtime.verifier is None or runtime.verifier.keys.ready())
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    app = Starlette(
        routes=[
            Route("/v1/recordings", submit, methods=["POST"]),
            Route("/v1/jobs/{job_id}", job, methods=["GET"]),
            Route("/livez", livez, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    return BearerAuth(app, lambda: get_runtime().verifier, protected=PROTECTED_PREFIXES, clients=CLIENTS)
