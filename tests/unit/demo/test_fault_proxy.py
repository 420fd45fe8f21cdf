"""The fault proxy in front of a real HTTP server speaking the serving contract: each injected fault, and
a faithful passthrough of everything else."""

from __future__ import annotations

import http.client
import io
import json
import math
import threading
import time
import wave
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from spira.demo import steps
from spira.faults import Degradation, FaultProxy
from tests.fakes.prediction_server import Behaviour, FakePredictionServer


@pytest.fixture
def upstream() -> Iterator[FakePredictionServer]:
    with FakePredictionServer(Behaviour(model_version="7")) as server:
        yield server


def _wav(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    frames = b"".join(
        int(8000 * math.sin(2 * math.pi * 140 * i / rate)).to_bytes(2, "little", signed=True)
        for i in range(int(seconds * rate))
    )
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


def _multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "spira-test-boundary"
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="{name}"\r\n'
        f"Content-Type: audio/wav\r\n\r\n".encode()
        + content
        + b"\r\n"
        for name, content in files
    )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _request(
    url: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _predict(url: str, files: list[tuple[str, bytes]], path: str = "/predict") -> tuple[int, bytes]:
    body, content_type = _multipart(files)
    status, _headers, answer = _request(url, "POST", path, body, {"Content-Type": content_type})
    return status, answer


def test_the_spec_sets_each_fault_and_any_subset_of_them() -> None:
    assert Degradation.parse("latency=400,errors=0.2,version=0-bogus") == Degradation(400.0, 0.2, "0-bogus")
    assert Degradation.parse(" version=x ") == Degradation(version="x")
    assert Degradation.parse("") == Degradation()


def test_an_unknown_setting_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown setting 'slow' \(latency, errors, version\)"):
        Degradation.parse("latency=10,slow=1")


def test_injected_latency_delays_each_prediction_by_at_least_its_value(
    upstream: FakePredictionServer,
) -> None:
    with FaultProxy(upstream.url, Degradation(latency_ms=300)) as proxy:
        started = time.monotonic()
        status, answer = _predict(proxy.url, [("a.wav", _wav())])
        elapsed = time.monotonic() - started
    assert status == 200 and json.loads(answer)["model_version"] == "7"
    assert elapsed >= 0.3


def test_an_error_ratio_of_one_answers_every_prediction_with_the_injected_500(
    upstream: FakePredictionServer,
) -> None:
    with FaultProxy(upstream.url, Degradation(error_ratio=1.0)) as proxy:
        answers = [
            _predict(proxy.url, [("a.wav", _wav(0.5))], path)
            for path in ["/predict"] * 4 + ["/predict_batch"]
        ]
    assert [status for status, _ in answers] == [500] * 5
    for _, body in answers:
        error = json.loads(body)
        assert error["error"] == "injected_failure" and "injected failure" in error["detail"]
    assert upstream.predict_requests == 0  # refused by the proxy, never forwarded


def test_a_partial_error_ratio_fails_that_fraction_the_same_way_on_every_run(
    upstream: FakePredictionServer,
) -> None:
    runs = []
    for _ in range(2):
        with FaultProxy(upstream.url, Degradation(error_ratio=0.3)) as proxy:
            runs.append([_predict(proxy.url, [("a.wav", b"RIFF")])[0] for _ in range(60)])
    assert runs[0] == runs[1]  # seeded: a rerun of the demo fails the same requests
    failed = runs[0].count(500)
    assert 9 <= failed <= 27 and set(runs[0]) == {500, 400}  # the rest reached the server (a bad WAV: 400)


def test_the_model_version_is_rewritten_in_predict_and_in_each_batch_result(
    upstream: FakePredictionServer,
) -> None:
    clip = _wav(1.5)
    _, direct = _predict(upstream.url, [("a.wav", clip)])
    _, direct_batch = _predict(upstream.url, [("a.wav", clip), ("b.wav", b"nope")], "/predict_batch")
    with FaultProxy(upstream.url, Degradation(version="0-bogus")) as proxy:
        status, single = _predict(proxy.url, [("a.wav", clip)])
        batch_status, batch = _predict(proxy.url, [("a.wav", clip), ("b.wav", b"nope")], "/predict_batch")
    assert status == 200 and json.loads(single) == {**json.loads(direct), "model_version": "0-bogus"}
    good, bad = json.loads(batch)["results"]
    direct_good, direct_bad = json.loads(direct_batch)["results"]
    assert batch_status == 200 and direct_good["model_version"] == "7"
    assert good == {**direct_good, "model_version": "0-bogus"}
    assert bad == direct_bad and "model_version" not in bad  # an inline error stays as it was


def test_other_paths_pass_through_unchanged_and_without_faults(upstream: FakePredictionServer) -> None:
    every_fault = Degradation(latency_ms=1000, error_ratio=1.0, version="0-bogus")
    requests = [("GET", "/livez"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/info"), ("POST", "/x")]
    direct = [_request(upstream.url, method, path) for method, path in requests]
    with FaultProxy(upstream.url, every_fault) as proxy:
        started = time.monotonic()
        proxied = [_request(proxy.url, method, path) for method, path in requests]
        elapsed = time.monotonic() - started
    for (status, headers, body), (p_status, p_headers, p_body) in zip(direct, proxied, strict=True):
        assert (p_status, p_body) == (status, body)
        assert p_headers["content-type"] == headers["content-type"]
        assert p_headers["content-length"] == str(len(body))
    assert elapsed < 1.0  # the 1 s latency applies to predictions only


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with what reached it: method, target, headers and body."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: object) -> None:
        pass

    def echo(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = json.dumps(
            {"method": self.command, "target": self.path, "headers": dict(self.headers), "body": body.hex()}
        ).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Upstream", "echo")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_DELETE = echo


@pytest.fixture
def echo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_method_target_headers_and_body_reach_the_upstream_as_sent(echo_url: str) -> None:
    body = bytes(range(256)) * 4
    with FaultProxy(echo_url, Degradation(version="0-bogus")) as proxy:
        status, headers, answer = _request(
            proxy.url, "PUT", "/some/path?a=1&b=two", body, {"X-Trace": "abc", "Content-Type": "x/y"}
        )
    seen = json.loads(answer)
    assert (status, headers["x-upstream"]) == (201, "echo")
    assert (seen["method"], seen["target"], bytes.fromhex(seen["body"])) == (
        "PUT",
        "/some/path?a=1&b=two",
        body,
    )
    assert seen["headers"]["X-Trace"] == "abc" and seen["headers"]["Content-Type"] == "x/y"
    assert seen["headers"]["Host"] == urlsplit(echo_url).netloc


def test_an_unreachable_upstream_is_answered_502(upstream: FakePredictionServer) -> None:
    gone = upstream.url
    upstream.stop()
    with FaultProxy(gone, Degradation()) as proxy:
        status, _headers, body = _request(proxy.url, "GET", "/readyz")
    assert status == 502 and json.loads(body)["error"] == "bad_gateway"


def test_stop_returns_promptly_and_closes_open_keep_alive_connections(upstream: FakePredictionServer) -> None:
    proxy = FaultProxy(upstream.url, Degradation()).start()
    parts = urlsplit(proxy.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    conn.request("GET", "/livez")
    assert conn.getresponse().read() and conn.sock is not None  # kept alive
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 1.0
    assert conn.sock.recv(1) == b""  # the proxy closed its end
    conn.close()
    with pytest.raises(ConnectionRefusedError):
        _request(f"http://{parts.netloc}", "GET", "/livez")


def test_the_demo_puts_the_proxy_in_front_of_the_preview_only_when_degrading(
    upstream: FakePredictionServer, tmp_path
) -> None:
    from rich.console import Console

    healthy = steps.DemoContext(home=tmp_path, console=Console(file=io.StringIO()))
    assert steps.front_with_faults(healthy, upstream.url) == upstream.url and not healthy.proxies

    ctx = steps.DemoContext(
        home=tmp_path, console=Console(file=io.StringIO()), degrade="version=0-unexpected"
    )
    gate_url = steps.front_with_faults(ctx, upstream.url)
    try:
        assert gate_url != upstream.url and "fault proxy" in str(ctx.facts["fault_proxy"])
        assert json.loads(_predict(gate_url, [("a.wav", _wav())])[1])["model_version"] == "0-unexpected"
        assert json.loads(_predict(upstream.url, [("a.wav", _wav())])[1])["model_version"] == "7"
    finally:
        steps.stop_servers(ctx)
    assert not ctx.proxies
    with pytest.raises(ConnectionRefusedError):
        _request(gate_url, "GET", "/livez")
