"""A small real HTTP server that speaks the serving contract, with switches that degrade it.

The gate is tested against this before the real `bentoml serve` exists and to produce failures on
purpose: added latency, HTTP 500 for a fraction of requests, a wrong model_version, a probability outside
[0, 1]. It is a real socket server (stdlib, one thread per connection) on a free 127.0.0.1 port, so
Locust in its own process talks to it exactly as it would to the candidate.

Contract: POST /predict (multipart field `audio`) -> 200 JSON {probability, label, threshold,
model_version, windows, duration_s, sample_rate_in}, or 4xx JSON {error, detail}; POST /predict_batch
(one or more `audio` files) -> 200 JSON {results: [{file, <answer>} or {file, error, detail, status}]};
GET /livez 200; GET /readyz 200 when ready else 503; GET /metrics Prometheus text.

By hand: `python -m tests.fakes.prediction_server --port 3000 --latency-ms 200`.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import threading
import time
import wave
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from spira.loopback_http import LoopbackHttpServer

WINDOW_S = 4.0
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


@dataclass
class Behaviour:
    """Switches; change them on a running server (attribute writes are atomic under the GIL)."""

    model_version: str = "spira-fake-1"
    added_latency_s: float = 0.0
    error_fraction: float = 0.0  # this fraction of /predict requests gets HTTP 500, spread evenly
    wrong_model_version: str | None = None  # served instead of model_version when set
    probability_out_of_range: bool = False  # answers probability 1.5: well-formed but impossible
    accept_broken_uploads: bool = False  # answers 200 to anything, as a server without input checks would
    ready: bool = True
    readyz_reports_version: bool = False  # /readyz JSON carries model_version (lets the gate read it)


class BadUpload(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def _multipart_parts(content_type: str, body: bytes) -> list[tuple[str, str, bytes]]:
    """(field name, file name, content) of each part of a multipart/form-data body, in order (enough of
    RFC 7578 for file fields)."""
    params = dict(p.strip().split("=", 1) for p in content_type.split(";")[1:] if "=" in p)
    boundary = params.get("boundary", "").strip('"')
    if not content_type.startswith("multipart/form-data") or not boundary:
        raise BadUpload(415, "unsupported_media_type", "expected multipart/form-data with a boundary")
    parts: list[tuple[str, str, bytes]] = []
    for part in body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            raise BadUpload(400, "bad_multipart", "a part has no header/body separator")
        disposition = next(
            (
                line
                for line in head.decode("latin-1").split("\r\n")
                if line.lower().startswith("content-disposition")
            ),
            "",
        )
        name = next(
            (p.split("=", 1)[1].strip('"') for p in disposition.split(";") if p.strip().startswith("name=")),
            None,
        )
        filename = next(
            (
                p.split("=", 1)[1].strip('"')
                for p in disposition.split(";")
                if p.strip().startswith("filename=")
            ),
            "",
        )
        if name is not None:
            parts.append((name, filename, content[:-2] if content.endswith(b"\r\n") else content))
    return parts


def _decode_wav(data: bytes) -> tuple[memoryview, int, int]:
    """(left-channel PCM16 samples, sample rate, channels) or BadUpload with the contract's 4xx."""
    if not data:
        raise BadUpload(400, "empty_upload", "the audio field is empty")
    if not data.startswith(b"RIFF"):
        raise BadUpload(415, "unsupported_format", "not a WAV file (this fake decodes WAV only)")
    try:
        with wave.open(io.BytesIO(data)) as w:
            channels, rate, width = w.getnchannels(), w.getframerate(), w.getsampwidth()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise BadUpload(400, "undecodable_audio", f"cannot decode the WAV: {exc}") from exc
    if width != 2 or not frames:
        raise BadUpload(400, "undecodable_audio", "expected non-empty PCM16")
    pcm = memoryview(frames).cast("h")
    return pcm[::channels], rate, channels


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The load generator closes connections with requests in flight when a run stops: expected here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakePredictionServer(LoopbackHttpServer):
    """Start with `with FakePredictionServer(Behaviour()) as server: server.url`."""

    server_class = _QuietServer
    thread_name = "fake-prediction-server"

    def __init__(self, behaviour: Behaviour | None = None, port: int = 0) -> None:
        super().__init__(port)
        self.behaviour = behaviour or Behaviour()
        self._lock = threading.Lock()
        self.predict_requests = 0
        self.errors_injected = 0

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        (self._get if request.command == "GET" else self._post)(request)

    # --- handlers -------------------------------------------------------------------------------

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _json(self, handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
        self._send(handler, status, json.dumps(payload).encode(), "application/json")

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        b = self.behaviour
        if handler.path == "/livez":
            self._json(handler, 200, {"status": "alive"})
        elif handler.path == "/readyz":
            payload: dict[str, Any] = {"status": "ready" if b.ready else "loading"}
            if b.readyz_reports_version:
                payload["model_version"] = b.wrong_model_version or b.model_version
            self._json(handler, 200 if b.ready else 503, payload)
        elif handler.path == "/metrics":
            text = (
                "# HELP spira_predict_requests_total POST /predict requests.\n"
                "# TYPE spira_predict_requests_total counter\n"
                f"spira_predict_requests_total {self.predict_requests}\n"
            )
            self._send(handler, 200, text.encode(), "text/plain; version=0.0.4")
        else:
            self._json(handler, 404, {"error": "not_found", "detail": handler.path})

    def _inject_error(self) -> bool:
        """Spread errors evenly: request n fails when floor(n*f) steps up, so any window sees ~f."""
        with self._lock:
            self.predict_requests += 1
            n, f = self.predict_requests, self.behaviour.error_fraction
            fail = math.floor(n * f) > math.floor((n - 1) * f)
            self.errors_injected += fail
            return fail

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        if length > MAX_UPLOAD_BYTES:
            handler.close_connection = True
            self._json(handler, 413, {"error": "too_large", "detail": f"{length} bytes"})
            return
        body = handler.rfile.read(length)  # always drain the body so the connection can be reused
        if handler.path not in ("/predict", "/predict_batch"):
            self._json(handler, 404, {"error": "not_found", "detail": handler.path})
            return
        b = self.behaviour
        if b.added_latency_s:
            time.sleep(b.added_latency_s)
        if self._inject_error():
            self._json(handler, 500, {"error": "internal", "detail": "injected failure"})
            return
        content_type = handler.headers.get("Content-Type", "")
        try:
            parts = _multipart_parts(content_type, body)
            audio = [(filename, content) for name, filename, content in parts if name == "audio"]
            if not audio:
                raise BadUpload(422, "missing_field", "the multipart field 'audio' is required")
        except BadUpload as bad:
            if not b.accept_broken_uploads:
                self._json(handler, bad.status, {"error": bad.code, "detail": bad.detail})
                return
            audio = [("", b"")]
        if handler.path == "/predict_batch":
            results = []
            for filename, content in audio:
                try:
                    results.append({"file": filename, **self._answer(content)})
                except BadUpload as bad:
                    results.append(
                        {"file": filename, "error": bad.code, "detail": bad.detail, "status": bad.status}
                    )
            self._json(handler, 200, {"results": results})
            return
        try:
            answer = self._answer(audio[-1][1])
        except BadUpload as bad:
            self._json(handler, bad.status, {"error": bad.code, "detail": bad.detail})
            return
        self._json(handler, 200, answer)

    def _answer(self, audio: bytes) -> dict[str, Any]:
        """The contract's answer for one recording, or BadUpload (unless broken uploads are accepted)."""
        b = self.behaviour
        try:
            samples, rate, _channels = _decode_wav(audio)
        except BadUpload:
            if not b.accept_broken_uploads:
                raise
            samples, rate = memoryview(b"\x00\x00" * 16_000).cast("h"), 16_000
        duration = len(samples) / rate
        # a deterministic, input-dependent score standing in for the model: louder clips score higher
        sparse = samples[::100]  # a sparse RMS keeps the fake's CPU out of the latency it serves
        rms = math.sqrt(sum(s * s for s in sparse) / max(1, len(sparse))) / 32768.0
        probability = 1.0 / (1.0 + math.exp(-25.0 * (rms - 0.14)))
        if b.probability_out_of_range:
            probability = 1.5
        return {
            "probability": round(probability, 6),
            "label": "patient" if probability >= 0.5 else "control",
            "threshold": 0.5,
            "model_version": b.wrong_model_version or b.model_version,
            "windows": max(1, math.ceil(duration / WINDOW_S)),
            "duration_s": round(duration, 3),
            "sample_rate_in": rate,
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake SPIRA prediction server (127.0.0.1 only).")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--model-version", default="spira-fake-1")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--error-fraction", type=float, default=0.0)
    parser.add_argument("--wrong-model-version", default=None)
    args = parser.parse_args(argv)
    behaviour = Behaviour(
        model_version=args.model_version,
        added_latency_s=args.latency_ms / 1000,
        error_fraction=args.error_fraction,
        wrong_model_version=args.wrong_model_version,
    )
    server = FakePredictionServer(behaviour, port=args.port).start()
    print(f"fake prediction server on {server.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
