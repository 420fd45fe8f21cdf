"""Reading an upload from a multipart request, the same way for the model server (/predict) and the intake
API (/v1/recordings): the body read under a hard byte limit before anything is parsed, the field `audio`,
and the 4xx JSON answer {"error", "detail"} of every rejection."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse

from spira_core.uploads import Rejected

MULTIPART_OVERHEAD = 64 * 1024


def error_response(exc: Rejected) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
    return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status, headers=headers)


def require_multipart(request: Request) -> None:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise Rejected(
            415, "not_multipart", "send multipart/form-data with the recording in the field 'audio'"
        )


def body_size(request: Request, limit: int) -> int:
    """What the body may hold: its declared length (413 over the limit), else the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise Rejected(413, "too_large", f"request of {declared} bytes exceeds the limit of {limit}")
        return int(declared)
    return limit


async def read_body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, "too_large", f"request exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: Request, size: int, max_files: int) -> FormData:
    """The multipart form, parsed from the body read under `size`; 400 when it is malformed."""
    body = await read_body(request, size)

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        # one file more than allowed is parsed, so that too many files gets its own answer
        return await Request(request.scope, replay).form(max_files=max_files + 1, max_fields=max_files + 5)
    except (MultiPartException, ValueError) as exc:  # starlette's and python-multipart's: a malformed body
        raise Rejected(400, "bad_multipart", f"the multipart body could not be parsed: {exc}") from exc


async def audio_files(form: FormData, max_files: int) -> list[tuple[str, bytes]]:
    """The files of the field `audio` (filename, bytes); the form is closed."""
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
