"""multipart/form-data encoding of one file field, shared by the locustfile and the gate's probe.

Bodies are built once per clip and reused, so the load generator spends its CPU on sending, not on
re-encoding megabytes of audio per request.
"""

from __future__ import annotations

import hashlib

# Every request the gate sends carries this header: the server archives it apart from patients' uploads
# (serving/archive.py, SYNTHETIC_HEADER; loadtests import no serving code, a unit test holds both equal).
SYNTHETIC_HEADERS = {"X-Spira-Synthetic": "gate"}


def encode_file_field(field: str, filename: str, content_type: str, content: bytes) -> tuple[bytes, str]:
    """(body, Content-Type header) for a form with a single file field."""
    # A boundary derived from the content cannot occur in it by accident (it would contain its own hash).
    boundary = "spira-" + hashlib.sha256(content).hexdigest()[:32]
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    body = head + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"
