"""Before any load: is the candidate there and ready, and which model_version does it serve?

Standard library only (urllib), so the gate process never imports gevent. Every call is bounded by a
deadline: an unreachable candidate must end the gate with "could not run" in seconds, not hang a Job.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from loadtests.credential import CredentialUnavailable, auth_headers
from loadtests.multipart import SYNTHETIC_HEADERS, encode_file_field


class ProbeError(RuntimeError):
    """The candidate cannot be load tested (unreachable, never ready, or no usable answer)."""


@dataclass(frozen=True)
class Readiness:
    status: int
    body: dict[str, Any] | None
    attempts: int
    waited_s: float


def check_url(url: str) -> str:
    """The base URL without a trailing slash; ProbeError unless it is http(s)://host[:port][/path]."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ProbeError(f"'{url}' is not an http(s)://host[:port] URL")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ProbeError(f"'{url}' has an invalid port: {exc}") from exc
    return url.rstrip("/")


def _get_unbounded(url: str, timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    """GET bounded in wall time, name resolution included.

    urllib's timeout covers connect and read but not getaddrinfo, which can block for the resolver's
    own timeouts when cluster DNS is broken; a daemon thread lets the gate give up on time regardless
    (and never keeps the process alive at exit).
    """
    outcome: dict[str, Any] = {}

    def attempt() -> None:
        try:
            outcome["value"] = _get_unbounded(url, timeout)
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=attempt, name="readyz-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if "value" in outcome:
        return outcome["value"]
    if "error" in outcome:
        raise outcome["error"]
    raise TimeoutError(f"no answer within {timeout:g} s (name resolution or connect hung)")


def wait_ready(base_url: str, timeout_s: float, interval_s: float = 0.25) -> Readiness:
    """Poll GET /readyz until 200 or the deadline; ProbeError saying what was last seen otherwise."""
    deadline = time.monotonic() + timeout_s
    started, attempts, last = time.monotonic(), 0, "no attempt"
    while True:
        attempts += 1
        remaining = deadline - time.monotonic()
        try:
            status, raw = _get(f"{base_url}/readyz", timeout=max(0.2, min(2.0, remaining)))
            if status == 200:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                return Readiness(
                    status, body if isinstance(body, dict) else None, attempts, time.monotonic() - started
                )
            last = f"/readyz answered HTTP {status}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            last = f"cannot connect: {reason}"
        if time.monotonic() + interval_s >= deadline:
            raise ProbeError(f"{base_url} not ready after {timeout_s:g} s ({attempts} attempts; {last})")
        time.sleep(interval_s)


def first_answer_version(base_url: str, wav: bytes, timeout_s: float, attempts: int = 3) -> str:
    """POST one valid clip and return the model_version it was answered with.

    Retried a few times: a candidate that fails a fraction of requests should be judged by the load
    run (exit 1), not refused before it (exit 2), because of one unlucky probe.
    """
    body, ctype = encode_file_field("audio", "probe.wav", "audio/wav", wav)
    last = ""
    for _ in range(attempts):
        try:
            auth = auth_headers()  # the gate's token (none without a Vault role): loadtests/credential.py
        except CredentialUnavailable as exc:
            raise ProbeError(str(exc)) from exc
        request = urllib.request.Request(
            f"{base_url}/predict",
            data=body,
            method="POST",
            headers={"Content-Type": ctype, "Accept": "application/json", **SYNTHETIC_HEADERS, **auth},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as resp:
                answer = json.loads(resp.read())
            version = answer.get("model_version") if isinstance(answer, dict) else None
            if isinstance(version, str) and version:
                return version
            last = "the answer has no model_version"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
            last = str(getattr(exc, "reason", exc))
    raise ProbeError(f"could not read model_version from a probe upload to {base_url}/predict: {last}")
