"""The HTTP surface: POST /predict, POST /predict_batch, GET /info. Errors are JSON {"error", "detail"}.

The body is read with a hard byte limit before anything is parsed, so a huge upload costs at most the limit.
BentoML serves /livez, /readyz (our __is_ready__) and /metrics around this app.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from serving.archive import SYNTHETIC_HEADER
from serving.runtime import ServingRuntime
from spira_core.upload_http import (
    MULTIPART_OVERHEAD,
    body_size,
    error_response,
    read_multipart,
    require_multipart,
)
from spira_core.uploads import BODY_COPIES, Rejected

MAX_BATCH_FILES = 16
# Left out of BentoML's tracing (its service config `tracing.excluded_urls`; a pattern, so /predict_batch
# too). BentoML records an OpenTelemetry span for every ASGI message even with tracing off (its sampler always
# records, for the request ids in its logs): ~12 spans per 0.5 MB upload, ~0.65 ms CPU of the ~3 ms a request
# costs outside the model (docs/performance.md, "The served HTTP path"). Nothing here exports spans; a
# deployment that adds an exporter and wants these requests traced removes them from this list.
UNTRACED_PATHS = ["/predict"]


@contextlib.asynccontextmanager
async def _admitted(request: Request, runtime: ServingRuntime, max_files: int) -> AsyncIterator[int]:
    """Admission before the body is read: its type, its declared size, then room in the body budget for
    BODY_COPIES times its size (held until the answer)."""
    require_multipart(request)
    limit = runtime.max_upload_bytes * max_files + MULTIPART_OVERHEAD
    size = body_size(request, limit)
    async with runtime.bodies.hold(BODY_COPIES * size):
        yield size


async def _audio_files(
    request: Request, size: int, max_files: int
) -> tuple[list[tuple[str, bytes]], str | None]:
    """The files of the field `audio`, and the optional text field `site` (where the recording was made:
    input monitoring's label, serving/monitoring.py). Parsed as the body arrives (read_multipart)."""
    body = await read_multipart(request, size, max_files)
    return body.audio, body.text.get("site")


def _synthetic(request: Request) -> bool:
    """The gate marks its load (header X-Spira-Synthetic): archived apart from patients' uploads."""
    return request.headers.get(SYNTHETIC_HEADER, "").strip() != ""


def create_app(get_runtime: Callable[[], ServingRuntime]) -> Starlette:
    async def predict(request: Request) -> JSONResponse:
        runtime = get_runtime()
        try:
            async with _admitted(request, runtime, max_files=1) as size:
                ((filename, data),), site = await _audio_files(request, size, max_files=1)
                return JSONResponse(await runtime.predict(data, filename, _synthetic(request), site))
        except Rejected as exc:
            runtime.metrics.rejected(exc.code)
            return error_response(exc)

    async def predict_batch(request: Request) -> JSONResponse:
        runtime = get_runtime()
        try:
            async with _admitted(request, runtime, max_files=MAX_BATCH_FILES) as size:
                files, site = await _audio_files(request, size, max_files=MAX_BATCH_FILES)
                results = []
                for filename, data in files:
                    try:
                        answer = await runtime.predict(data, filename, _synthetic(request), site)
                        results.append({"file": filename, **answer})
                    except Rejected as exc:
                        runtime.metrics.rejected(exc.code)
                        results.append(
                            {"file": filename, "error": exc.code, "detail": exc.detail, "status": exc.status}
                        )
                return JSONResponse({"results": results})
        except Rejected as exc:
            runtime.metrics.rejected(exc.code)
            return error_response(exc)

    async def info(request: Request) -> JSONResponse:
        return JSONResponse(get_runtime().info())

    return Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/predict_batch", predict_batch, methods=["POST"]),
            Route("/info", info, methods=["GET"]),
        ]
    )
