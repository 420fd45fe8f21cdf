"""Reading an upload from a multipart request, the same way for the model server (/predict) and the intake
API (/v1/recordings): the body read under a hard byte limit before anything is parsed, the field `audio`,
and the 4xx JSON answer {"error", "detail"} of every rejection.

Two readers: `read_form` (the whole body read, then starlette's form parser over a replay of it) and
`read_multipart` (the model server's: python-multipart fed each chunk as it arrives, the audio part's bytes
kept as views of those chunks and joined once; no replay, no spooled temporary file, no FormData). Both give
the same answers; the second copies a 0.5 MB upload once instead of four times (issue 21)."""

from __future__ import annotations

from dataclasses import dataclass, field

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


# Text fields a multipart upload may carry besides its files (e.g. `site`), and their total size.
MAX_TEXT_FIELDS = 8
MAX_TEXT_BYTES = 4096


@dataclass
class Multipart:
    """What `read_multipart` keeps of a body: the files of the field `audio` (filename, bytes) in order and
    the small text fields by name (the last value of each)."""

    audio: list[tuple[str, bytes]] = field(default_factory=list)
    text: dict[str, str] = field(default_factory=dict)


def _decode_name(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class _Parts:
    """python-multipart's callbacks: each part's headers, then its data kept (the `audio` files', as views
    of the chunks; small text fields') or skipped (any other file)."""

    def __init__(self, max_files: int) -> None:
        from python_multipart.multipart import parse_options_header

        self.parse_options_header = parse_options_header
        self.max_files = max_files
        self.out = Multipart()
        self.files = 0
        self.text_bytes = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._kind: str | None = None  # "audio", "text" or None (skipped)
        self._name = self._filename = ""
        self._data: list = []

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self._disposition, self._kind, self._data = b"", None, []

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = self.parse_options_header(self._disposition)
        if b"name" not in options:
            raise Rejected(400, "bad_multipart", 'a part\'s Content-Disposition has no "name"')
        self._name = _decode_name(options[b"name"])
        if b"filename" in options:
            self.files += 1
            if self.files > self.max_files + 1:  # one more than allowed: too many gets its own answer
                raise Rejected(400, "bad_multipart", f"more than {self.max_files + 1} files in the body")
            self._filename = _decode_name(options[b"filename"])
            self._kind = "audio" if self._name == "audio" else None
        else:
            if len(self.out.text) >= MAX_TEXT_FIELDS:
                raise Rejected(400, "bad_multipart", f"more than {MAX_TEXT_FIELDS} text fields")
            self._kind = "text"

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._kind is None:
            return
        if self._kind == "text":
            self.text_bytes += end - start
            if self.text_bytes > MAX_TEXT_BYTES:
                raise Rejected(400, "bad_multipart", f"text fields over {MAX_TEXT_BYTES} bytes")
        # a view of the chunk the body arrived in, not a copy (python-multipart passes its own buffer only
        # for a boundary look-behind: that one is copied, since the parser reuses it)
        self._data.append(memoryview(data)[start:end] if isinstance(data, bytes) else bytes(data[start:end]))

    def on_part_end(self) -> None:
        if self._kind == "audio":
            self.out.audio.append((self._filename, b"".join(self._data)))
        elif self._kind == "text":
            self.out.text[self._name] = _decode_name(b"".join(self._data))
        self._data = []


async def read_multipart(request: Request, limit: int, max_files: int) -> Multipart:
    """The multipart body parsed as it is read, under `limit` bytes (413 beyond); 400 `bad_multipart` when
    it is malformed or ends before its closing boundary; the `audio` files checked as `audio_files` does
    (400 missing_audio, one_file_only, too_many_files)."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise Rejected(400, "bad_multipart", "the multipart body could not be parsed: no boundary")
    parts = _Parts(max_files)
    size = 0
    try:
        parser = MultipartParser(boundary, parts.callbacks())
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Rejected(413, "too_large", f"request exceeds the limit of {limit} bytes")
            parser.write(chunk)
        parser.finalize()
    except (FormParserError, ValueError) as exc:  # python-multipart's: a malformed body
        raise Rejected(400, "bad_multipart", f"the multipart body could not be parsed: {exc}") from exc
    if parser.state != MultipartState.END:
        raise Rejected(400, "bad_multipart", "the multipart body ends before its closing boundary")
    files = parts.out.audio
    if not files:
        raise Rejected(400, "missing_audio", "no file in the multipart field 'audio'")
    if len(files) > max_files:
        if max_files == 1:
            raise Rejected(400, "one_file_only", "send exactly one file in 'audio' (or use /predict_batch)")
        raise Rejected(400, "too_many_files", f"at most {max_files} files in one batch")
    return parts.out
