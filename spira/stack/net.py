"""Port and HTTP health checks for local services."""

from __future__ import annotations

import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, timeout: float = 2.0, ca: Path | None = None) -> int | None:
    """The HTTP status of a GET, or None if nothing answered; https trusts only `ca` when given."""
    try:
        context = ssl.create_default_context(cafile=str(ca)) if ca is not None else None
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError, TimeoutError):
        return None


def wait_until(
    check: Callable[[], bool],
    timeout_s: float,
    interval_s: float = 0.25,
    abort: Callable[[], bool] | None = None,
) -> bool:
    """Poll `check` until it is true; stop early when `abort` says the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        if abort is not None and abort():
            return False
        time.sleep(interval_s)
    return check()
