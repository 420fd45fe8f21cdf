"""Locust load for the SPIRA serving contract: realistic voice uploads to POST /predict.

Each simulated phone app uploads WAV clips from the cached corpus (2-10 s, 16/44.1/48 kHz, mono and
stereo) and, for a small fraction of requests (5 % by default), a broken upload (cut-off transfer, not
audio, empty, missing field). Locust's own statistics judge transport: a valid upload fails unless
answered 200, a broken one fails unless refused with a 4xx. The *content* of every 200 answer is checked
against the contract here (probability in [0, 1], label, expected model_version) and tallied in a JSON
counters file that the gate reads after the run, because a fast, well-formed but wrong answer is a
correctness failure, not a transport error.

Run by the gate (`python -m loadtests.gate`), or by hand from the repository root:
    python -m locust -f loadtests/locustfile.py --headless -H http://127.0.0.1:3000 -u 2 -r 2 -t 10s
Importing this module imports gevent and monkey-patches the process: nothing else in the gate does.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.ssl
from locust import FastHttpUser, between, events, task
from locust.exception import StopUser

from loadtests.answers import check_prediction, is_refusal
from loadtests.audio import default_cache_dir, ensure_corpus, invalid_uploads
from loadtests.credential import auth_headers
from loadtests.multipart import SYNTHETIC_HEADERS, encode_file_field

log = logging.getLogger("spira.loadtest")
MAX_EXAMPLES = 5  # a few offending answers in the verdict explain a failure; thousands would drown it


@dataclass(frozen=True)
class Upload:
    name: str
    body: bytes
    content_type: str
    kind: str = "valid"


@dataclass
class RunState:
    """Everything the users share in this process: uploads, the request budget and the counters."""

    valid: list[Upload]
    invalid: list[Upload]
    expected_model_version: str | None
    invalid_ratio: float
    max_requests: int
    counters_file: Path | None
    seed: int
    started: int = 0  # requests started (taken from the budget); some may be cut off by the stop
    users_started: int = 0
    stopping: bool = False
    valid_status: Counter = field(default_factory=Counter)
    checked: int = 0
    incorrect: int = 0
    problems: Counter = field(default_factory=Counter)
    model_versions: Counter = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    invalid_status: Counter = field(default_factory=Counter)
    invalid_by_kind: dict[str, Counter] = field(default_factory=dict)

    def take_budget(self) -> bool:
        """One more request may be sent; False once max_requests have been sent."""
        if self.started >= self.max_requests:
            return False
        self.started += 1
        return True

    def record_valid(self, status: int, body: Any, problems: list[str], upload: str) -> None:
        self.valid_status[str(status)] += 1
        if status != 200:
            return
        self.checked += 1
        if isinstance(body, dict) and isinstance(body.get("model_version"), str):
            self.model_versions[body["model_version"]] += 1
        if problems:
            self.incorrect += 1
            self.problems.update(problems)
            if len(self.examples) < MAX_EXAMPLES:
                snippet = json.dumps(body)[:300] if body is not None else None
                self.examples.append({"upload": upload, "problems": problems, "answer": snippet})

    def record_invalid(self, kind: str, status: int) -> None:
        self.invalid_status[str(status)] += 1
        self.invalid_by_kind.setdefault(kind, Counter())[str(status)] += 1

    def as_json(self) -> dict[str, Any]:
        refused = sum(n for s, n in self.invalid_status.items() if is_refusal(int(s)))
        return {
            "expected_model_version": self.expected_model_version,
            "max_requests": self.max_requests,
            "started": self.started,
            "stopped_by_max_requests": self.started >= self.max_requests,
            "valid": {
                "completed": sum(self.valid_status.values()),
                "status": dict(self.valid_status),
                "checked": self.checked,
                "correct": self.checked - self.incorrect,
                "incorrect": self.incorrect,
                "problems": dict(self.problems),
                "model_versions": dict(self.model_versions),
                "examples": self.examples,
            },
            "invalid": {
                "completed": sum(self.invalid_status.values()),
                "refused_4xx": refused,
                "status": dict(self.invalid_status),
                "by_kind": {k: dict(v) for k, v in self.invalid_by_kind.items()},
            },
        }

    def write(self) -> None:
        if self.counters_file is None:
            return
        self.counters_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.counters_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.as_json(), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.counters_file)  # the gate never reads half a file


_state: RunState | None = None


@events.init_command_line_parser.add_listener
def _add_options(parser) -> None:
    # env_var lets the gate (and the AnalysisTemplate Job) configure the run without a long argv
    parser.add_argument(
        "--spira-corpus-dir",
        env_var="SPIRA_GATE_CORPUS_DIR",
        default="",
        help="cached WAV corpus folder (built there if missing)",
    )
    parser.add_argument(
        "--spira-counters-file",
        env_var="SPIRA_GATE_COUNTERS_FILE",
        default="",
        help="where to write the correctness counters (JSON)",
    )
    parser.add_argument(
        "--spira-expect-model-version",
        env_var="SPIRA_GATE_EXPECT_MODEL_VERSION",
        default="",
        help="model_version every valid answer must carry",
    )
    parser.add_argument(
        "--spira-invalid-ratio",
        env_var="SPIRA_GATE_INVALID_RATIO",
        type=float,
        default=0.05,
        help="fraction of broken uploads (must be refused 4xx)",
    )
    parser.add_argument(
        "--spira-max-requests",
        env_var="SPIRA_GATE_MAX_REQUESTS",
        type=int,
        default=100_000,
        help="stop the run after this many requests",
    )
    parser.add_argument(
        "--spira-seed",
        env_var="SPIRA_GATE_SEED",
        type=int,
        default=7,
        help="seed of the per-user upload choice (runs are reproducible)",
    )


@events.init.add_listener
def _prepare(environment, **_kwargs) -> None:
    global _state
    options = environment.parsed_options
    corpus = Path(options.spira_corpus_dir) if options.spira_corpus_dir else default_cache_dir()
    clips = ensure_corpus(corpus)
    valid = []
    for clip in clips:
        body, ctype = encode_file_field("audio", clip.path.name, "audio/wav", clip.path.read_bytes())
        valid.append(Upload(clip.spec.name, body, ctype))
    invalid = []
    for bad in invalid_uploads(clips[0].path.read_bytes()):
        body, ctype = encode_file_field(bad.field, bad.filename, bad.content_type, bad.content)
        invalid.append(Upload(bad.kind, body, ctype, kind="invalid"))
    _state = RunState(
        valid=valid,
        invalid=invalid,
        expected_model_version=options.spira_expect_model_version or None,
        invalid_ratio=options.spira_invalid_ratio,
        max_requests=options.spira_max_requests,
        counters_file=Path(options.spira_counters_file) if options.spira_counters_file else None,
        seed=options.spira_seed,
    )
    log.info("corpus: %d valid clips, %d broken uploads, from %s", len(valid), len(invalid), corpus)


@events.test_stop.add_listener
def _write_on_stop(**_kwargs) -> None:
    if _state is not None:
        _state.write()


@events.quitting.add_listener
def _write_on_quit(**_kwargs) -> None:
    if _state is not None:
        _state.write()


def verified_tls_context(**_ignored: Any) -> gevent.ssl.SSLContext:
    """TLS to the candidate verified against the process's default trust: in a cluster the gate Job sets
    SSL_CERT_FILE to the platform CA (the preview's certificate is cert-manager's, from that CA), so only
    that CA is trusted. geventhttpclient would otherwise add certifi's public bundle (its `cafile`)."""
    return gevent.ssl.create_default_context()


class PhoneApp(FastHttpUser):
    """A phone app uploading one recording after another, with a short think time between them."""

    # Locust's FastHttpUser skips certificate checks by default: an https candidate must prove who it is.
    insecure = False
    ssl_context_factory = staticmethod(verified_tls_context)

    wait_time = between(0.05, 0.2)
    # a slow candidate must show up as latency, not as client-side timeouts cutting requests short
    network_timeout = 60.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        assert _state is not None, "the init event prepares the uploads before users start"
        _state.users_started += 1
        self.rng = random.Random(_state.seed * 1_000 + _state.users_started)

    def _stop_when_budget_spent(self) -> None:
        assert _state is not None
        if _state.take_budget():
            return
        if not _state.stopping:
            _state.stopping = True
            log.info("max requests (%d) reached, stopping the run", _state.max_requests)
            # quit from a fresh greenlet, a moment later, so in-flight requests can finish and be counted
            gevent.spawn_later(1.0, self.environment.runner.quit)
        raise StopUser()

    @task
    def upload(self) -> None:
        assert _state is not None
        self._stop_when_budget_spent()
        if self.rng.random() < _state.invalid_ratio:
            self._send_invalid(self.rng.choice(_state.invalid))
        else:
            self._send_valid(self.rng.choice(_state.valid))

    def _send_valid(self, upload: Upload) -> None:
        assert _state is not None
        headers = {
            "Content-Type": upload.content_type,
            "Accept": "application/json",
            **SYNTHETIC_HEADERS,
            **auth_headers(),  # the gate's token, renewed before it expires (loadtests/credential.py)
        }
        with self.client.post(
            "/predict", data=upload.body, headers=headers, name="/predict [valid]", catch_response=True
        ) as resp:
            status = resp.status_code or 0  # 0: no HTTP answer at all (refused, reset, timeout)
            if status != 200:
                _state.record_valid(status, None, [], upload.name)
                resp.failure(f"valid upload answered HTTP {status}")
                return
            try:
                body = resp.json()
            except ValueError:
                body = None
            _state.record_valid(
                status, body, check_prediction(body, _state.expected_model_version), upload.name
            )
            resp.success()  # served; whether the content is right is the correctness SLO's business

    def _send_invalid(self, upload: Upload) -> None:
        assert _state is not None
        headers = {
            "Content-Type": upload.content_type,
            "Accept": "application/json",
            **SYNTHETIC_HEADERS,
            **auth_headers(),  # the gate's token, renewed before it expires (loadtests/credential.py)
        }
        with self.client.post(
            "/predict", data=upload.body, headers=headers, name="/predict [invalid]", catch_response=True
        ) as resp:
            status = resp.status_code or 0
            _state.record_invalid(upload.name, status)
            if is_refusal(status):
                resp.success()
            elif 200 <= status < 300:
                resp.failure(f"broken upload '{upload.name}' was accepted (HTTP {status})")
            else:
                resp.failure(f"broken upload '{upload.name}' answered HTTP {status}, expected 4xx")
