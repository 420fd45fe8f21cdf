"""read_multipart: the model server's multipart reader, parsed as the body arrives (issue 21), gives the
bytes and the answers starlette's form parser gave, in any chunking."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from spira_core.upload_http import read_form, read_multipart
from spira_core.uploads import Rejected

BOUNDARY = "b0undary"


def _body(parts: list[tuple[str, str | None, bytes]], close: bool = True) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


def _request(body: bytes, chunk: int) -> Request:
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]

    async def receive():
        data = chunks.pop(0)
        return {"type": "http.request", "body": data, "more_body": bool(chunks)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())],
    }
    return Request(scope, receive)


# audio whose bytes look like the start of a boundary, across chunk edges
AUDIO = bytes(range(256)) * 40 + b"\r\n--b0und" + b"\r\n-" + bytes(1000) + b"\r\n--b0undar"


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_the_audio_arrives_byte_for_byte_whatever_the_chunks_and_as_the_form_parser_reads_it(chunk) -> None:
    body = _body([("site", None, b"clinic-a"), ("other", "x.bin", b"skip me"), ("audio", "a.wav", AUDIO)])
    got = asyncio.run(read_multipart(_request(body, chunk), len(body), max_files=1))
    assert got.audio == [("a.wav", AUDIO)] and got.text == {"site": "clinic-a"}

    async def via_form():
        form = await read_form(_request(body, chunk), len(body), max_files=1)
        return (await form.getlist("audio")[0].read()), form.get("site")

    assert asyncio.run(via_form()) == (AUDIO, "clinic-a")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (_body([("audio", "a.wav", AUDIO)], close=False), 400, "bad_multipart"),  # cut before the end
        (_body([("audio", None, b"not a file")]), 400, "missing_audio"),
        (_body([("audio", "a.wav", AUDIO), ("audio", "b.wav", AUDIO)]), 400, "one_file_only"),
        (_body([("audio", f"{i}.wav", b"x") for i in range(3)]), 400, "bad_multipart"),
        (b"--" + BOUNDARY.encode() + b"\r\nbroken", 400, "bad_multipart"),
    ],
)
def test_malformed_incomplete_or_crowded_bodies_get_their_4xx(body: bytes, status: int, code: str) -> None:
    with pytest.raises(Rejected) as err:
        asyncio.run(read_multipart(_request(body, 1000), len(body), max_files=1))
    assert (err.value.status, err.value.code) == (status, code)


def test_a_body_longer_than_its_limit_is_refused_while_it_streams() -> None:
    body = _body([("audio", "a.wav", AUDIO)])
    with pytest.raises(Rejected) as err:
        asyncio.run(read_multipart(_request(body, 1000), 5000, max_files=1))
    assert (err.value.status, err.value.code) == (413, "too_large")
