"""The multipart encoding the load test sends is what a standard form parser reads back."""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP

from loadtests.multipart import encode_file_field


def parse(body: bytes, content_type: str):
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    return list(message.iter_parts())


def test_a_file_field_round_trips_through_a_standard_multipart_parser():
    content = bytes(range(256)) * 40 + b"\r\n--not-the-boundary\r\n"
    body, ctype = encode_file_field("audio", "clip.wav", "audio/wav", content)
    (part,) = parse(body, ctype)
    assert part.get_param("name", header="content-disposition") == "audio"
    assert part.get_filename() == "clip.wav"
    assert part.get_content_type() == "audio/wav"
    assert part.get_payload(decode=True) == content


def test_an_empty_file_is_still_a_well_formed_form():
    body, ctype = encode_file_field("audio", "empty.wav", "audio/wav", b"")
    (part,) = parse(body, ctype)
    assert part.get_payload(decode=True) == b""


def test_the_boundary_never_occurs_inside_the_content():
    content = b"RIFF" + b"\x00" * 1000
    body, ctype = encode_file_field("audio", "a.wav", "audio/wav", content)
    boundary = ctype.split("boundary=")[1].encode()
    assert boundary not in content
    assert body.count(boundary) == 2
