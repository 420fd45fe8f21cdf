"""A small HTTP server on 127.0.0.1 in a daemon thread: what the fault proxy and the test fakes run on."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LoopbackHttpServer(ABC):
    """`start()` binds 127.0.0.1 (port 0: a free one) and serves `handle` in a thread; `stop()` ends it and
    any keep-alive connections the server class can close (`close_connections`). A context manager."""

    server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer
    methods: tuple[str, ...] = ("GET", "POST")
    thread_name = "loopback-http"
    idle_timeout_s: float | None = None  # an idle keep-alive connection ends after this, if set

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @abstractmethod
    def handle(self, request: BaseHTTPRequestHandler) -> None:
        """Answer one request (`request.command` is its method)."""

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__}: start() it first")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        owner = self

        def answer(request: BaseHTTPRequestHandler) -> None:
            owner.handle(request)

        attributes: dict[str, Any] = {
            "protocol_version": "HTTP/1.1",  # keep-alive, as the real server and Locust's client use
            "timeout": self.idle_timeout_s,
            "log_message": lambda *_args: None,  # quiet: callers read answers, not access logs
            **{f"do_{method}": answer for method in self.methods},
        }
        handler = type("Handler", (BaseHTTPRequestHandler,), attributes)
        self._httpd = self.server_class(("127.0.0.1", self._port), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            name=self.thread_name,
            kwargs={"poll_interval": 0.1},
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            close = getattr(self._httpd, "close_connections", None)
            if close is not None:
                close()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
