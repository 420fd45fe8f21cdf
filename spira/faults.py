"""A fault-injecting reverse proxy in front of a candidate, to prove the promotion gate blocks bad ones.

The candidate (the preview pod played from the image by digest, or a local `bentoml serve`) runs exactly
what production runs; the faults live here, on the operator side, the way toxiproxy or Envoy's fault
filter sit in front of a service. A `Degradation` spec, any subset of
`"latency=400,errors=0.2,version=0-bogus"`, applies to the prediction routes (`POST /predict`,
`POST /predict_batch`):

- `latency=MS`: the proxy waits MS milliseconds before forwarding;
- `errors=F`: a fraction F of requests (seeded RNG, seed 0) is answered 500
  `{"error": "injected_failure", "detail": ...}` without reaching the candidate;
- `version=V`: every `model_version` in the JSON answer (the single answer of /predict, each result of
  /predict_batch) is rewritten to V.

Every other request (`/livez`, `/readyz`, `/metrics`, `/info`, ...) is forwarded untouched, so the gate's
readiness probe sees a healthy candidate and its verdict names the injected fault.

By hand: `python -m spira.faults --upstream http://127.0.0.1:3000 --spec latency=1500 --port 3100`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import random
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from spira.loopback_http import LoopbackHttpServer

FAULTED_PATHS = frozenset({"/predict", "/predict_batch"})
# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded; Host is the upstream's
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)


@dataclass(frozen=True)
class Degradation:
    latency_ms: float = 0.0
    error_ratio: float = 0.0
    version: str | None = None

    @classmethod
    def parse(cls, spec: str) -> Degradation:
        values: dict[str, object] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, _, value = part.partition("=")
            if key == "latency":
                values["latency_ms"] = float(value)
            elif key == "errors":
                values["error_ratio"] = float(value)
            elif key == "version":
                values["version"] = value
            else:
                raise ValueError(f"degradation: unknown setting {key!r} (latency, errors, version)")
        return cls(**values)

    def __str__(self) -> str:
        parts = [f"latency={self.latency_ms:g}" if self.latency_ms else ""]
        parts.append(f"errors={self.error_ratio:g}" if self.error_ratio else "")
        parts.append(f"version={self.version}" if self.version is not None else "")
        return ",".join(p for p in parts if p) or "none"


def rewrite_model_version(answer: Any, version: str) -> Any:
    """`answer` with every `model_version` field (at any depth of dicts and lists) set to `version`."""
    if isinstance(answer, dict):
        return {
            k: version if k == "model_version" else rewrite_model_version(v, version)
            for k, v in answer.items()
        }
    if isinstance(answer, list):
        return [rewrite_model_version(v, version) for v in answer]
    return answer


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End open keep-alive connections, so no handler thread outlives stop()."""
        with self.connections_lock:
            for conn in list(self.connections):
                with contextlib.suppress(OSError):  # already closed by the client
                    conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a load generator closes connections with requests in flight when its run stops: expected here
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class FaultProxy(LoopbackHttpServer):
    """`with FaultProxy("http://127.0.0.1:3000", Degradation.parse("errors=0.3")) as proxy: proxy.url`."""

    server_class = _ProxyServer
    methods = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    thread_name = "fault-proxy"
    idle_timeout_s = 60

    def __init__(
        self,
        upstream: str,
        degradation: Degradation,
        port: int = 0,
        upstream_timeout_s: float = 120.0,
        seed: int = 0,
    ) -> None:
        super().__init__(port)
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"fault proxy: upstream must be an http:// URL, not {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self._upstream_host, self._upstream_port = parts.hostname, parts.port or 80
        self._upstream_prefix = parts.path.rstrip("/")
        self.degradation = degradation
        self.upstream_timeout_s = upstream_timeout_s
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.forwarded = 0
        self.errors_injected = 0

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        self._handle(request)

    # --- one request ----------------------------------------------------------------------------

    def _inject_error(self) -> bool:
        if not self.degradation.error_ratio:
            return False
        with self._rng_lock:
            fail = self._rng.random() < self.degradation.error_ratio
            self.errors_injected += fail
        return fail

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = _read_body(handler)  # always drained, so the client's connection stays usable
        path = urlsplit(handler.path).path
        faulted = path in FAULTED_PATHS
        d = self.degradation
        if faulted and d.latency_ms:
            time.sleep(d.latency_ms / 1000.0)
        if faulted and self._inject_error():
            detail = f"fault proxy: injected failure (errors={d.error_ratio:g})"
            _send(handler, 500, [("Content-Type", "application/json")], _json(("injected_failure", detail)))
            return
        headers = [
            (k, v) for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP | {"content-length"}
        ]  # the body was read whole: its length is set again when forwarded
        rewrite = faulted and d.version is not None
        if rewrite:  # an answer the proxy must read and rewrite: ask for it uncompressed
            headers = [(k, v) for k, v in headers if k.lower() != "accept-encoding"]
        try:
            status, reason, out_headers, out_body = self._forward(
                handler.command, handler.path, headers, body
            )
        except (OSError, http.client.HTTPException) as exc:
            detail = f"fault proxy: upstream {self.upstream} failed: {exc!r}"
            _send(handler, 502, [("Content-Type", "application/json")], _json(("bad_gateway", detail)))
            return
        with self._rng_lock:
            self.forwarded += 1
        if rewrite:
            out_body = _rewritten(out_headers, out_body, d.version or "")
        _send(handler, status, out_headers, out_body, reason)

    def _forward(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(
            self._upstream_host, self._upstream_port, timeout=self.upstream_timeout_s
        )
        try:
            conn.putrequest(method, self._upstream_prefix + target, skip_accept_encoding=True)
            for key, value in headers:
                conn.putheader(key, value)
            if body or method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            out_body = resp.read()  # de-chunked when the upstream streamed it
            out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
            return resp.status, resp.reason, out_headers, out_body
        finally:
            conn.close()


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()  # the CRLF after each chunk
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _json(error: tuple[str, str]) -> bytes:
    return json.dumps({"error": error[0], "detail": error[1]}).encode()


def _rewritten(headers: list[tuple[str, str]], body: bytes, version: str) -> bytes:
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    if "json" not in content_type.lower():
        return body
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    return json.dumps(rewrite_model_version(answer, version)).encode()


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    reason: str | None = None,
) -> None:
    """The answer with its upstream headers; Content-Length counts the body sent (a HEAD keeps the upstream's)."""
    handler.send_response_only(status, reason)
    head = handler.command == "HEAD"
    for key, value in headers:
        if head or key.lower() != "content-length":
            handler.send_header(key, value)
    if not head:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if not head:
        handler.wfile.write(body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fault-injecting reverse proxy (127.0.0.1 only).")
    parser.add_argument("--upstream", required=True, help="the candidate's base URL, http://host:port")
    parser.add_argument("--spec", required=True, help="latency=MS,errors=FRACTION,version=V (any subset)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        degradation = Degradation.parse(args.spec)
    except ValueError as exc:
        parser.error(str(exc))
    proxy = FaultProxy(args.upstream, degradation, port=args.port).start()
    print(f"fault proxy on {proxy.url} -> {proxy.upstream} ({degradation})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        proxy.stop()


if __name__ == "__main__":
    main()
