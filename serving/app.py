"""The HTTP surface: POST /predict, POST /predict_batch, GET /info. Errors are JSON {"error", "detail"}.

The body is read with a hard byte limit before anything is parsed, so a huge upload costs at most the limit.
BentoML serves /livez, /readyz (our __is_ready__) and /metrics around this app.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from serving.archive import SYNTHETIC_HEADER
from serving.limits import BODY_COPIES, Rejected
from serving.runtime import ServingRuntime

MULTIPART_OVERHEAD = 64 * 1024
MAX_BATCH_FILES = 16


def _error(exc: Rejected) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
    return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status, headers=headers)


def _body_size(request: Request, limit: int) -> int:
    """What the body may hold: its declared length (413 over the limit), else the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise Rejected(413, "too_large", f"request of {declared} bytes exceeds the limit of {limit}")
        return int(declared)
    return limit


async def _read_body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, "too_large", f"request exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@contextlib.asynccontextmanager
async def _admitted(request: Request, runtime: ServingRuntime, max_files: int) -> AsyncIterator[int]:
    """Admission before the body is read: its type, its declared size, then room in the body budget for
    BODY_COPIES times its size (held until the answer)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise Rejected(
            415, "not_multipart", "send multipart/form-data with the recording in the field 'audio'"
        )
    limit = runtime.max_upload_bytes * max_files + MULTIPART_OVERHEAD
    size = _body_size(request, limit)
    async with runtime.bodies.hold(BODY_COPIES * size):
        yield size


async def _audio_files(request: Request, size: int, max_files: int) -> list[tuple[str, bytes]]:
    body = await _read_body(request, size)

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        # one file more than allowed is parsed, so that too many files gets its own answer below
        form = await Request(request.scope, replay).form(max_files=max_files + 1, max_fields=max_files + 5)
    except (MultiPartException, ValueError) as exc:  # starlette's and python-multipart's: a malformed body
        raise Rejected(400, "bad_multipart", f"the multipart body could not be parsed: {exc}") from exc
    files = [f for f in form.getlist("audio") if hasattr(f, "read")]
    if not files:
        await form.close()
        raise Rejected(400, "missing_audio", "no file in the multipart field 'audio'")
    if len(files) > max_files:
        await form.close()
        if max_files == 1:
            raise Rejected(400, "one_file_only", "send exactly one file in 'audio' (or use /predict_batch)")
        raise Rejected(400, "too_many_files", f"at most {max_files} files in one batch")
    out = [(f.filename or "", await f.read()) for f in files]
    await form.close()
    return out


def _synthetic(request: Request) -> bool:
    """The gate marks its load (header X-Spira-Synthetic): archived apart from patients' uploads."""
    return request.headers.get(SYNTHETIC_HEADER, "").strip() != ""


def create_app(get_runtime: Callable[[], ServingRuntime]) -> Starlette:
    async def predict(request: Request) -> JSONResponse:
        runtime = get_runtime()
        try:
            async with _admitted(request, runtime, max_files=1) as size:
                ((filename, data),) = await _audio_files(request, size, max_files=1)
                return JSONResponse(await runtime.predict(data, filename, _synthetic(request)))
        except Rejected as exc:
            runtime.metrics.rejected(exc.code)
            return _error(exc)

    async def predict_batch(request: Request) -> JSONResponse:
        runtime = get_runtime()
        try:
            async with _admitted(request, runtime, max_files=MAX_BATCH_FILES) as size:
                files = await _audio_files(request, size, max_files=MAX_BATCH_FILES)
                results = []
                for filename, data in files:
                    try:
                        answer = await runtime.predict(data, filename, _synthetic(request))
                        results.append({"file": filename, **answer})
                    except Rejected as exc:
                        runtime.metrics.rejected(exc.code)
                        results.append(
                            {"file": filename, "error": exc.code, "detail": exc.detail, "status": exc.status}
                        )
                return JSONResponse({"results": results})
        except Rejected as exc:
            runtime.metrics.rejected(exc.code)
            return _error(exc)

    async def info(request: Request) -> JSONResponse:
        return JSONResponse(get_runtime().info())

    return Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/predict_batch", predict_batch, methods=["POST"]),
            Route("/info", info, methods=["GET"]),
        ]
    )
