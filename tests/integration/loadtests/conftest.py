"""Fixtures for gate runs against the fake prediction server (real sockets on 127.0.0.1, real Locust)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from loadtests import audio, gate
from tests.fakes.prediction_server import Behaviour, FakePredictionServer

EXPECTED_VERSION = "spira-fake-1"

# Short runs judged on test thresholds: latency and throughput limits generous enough for a healthy fake
# on 2 cores shared with other test workers (load average above 10 was seen), yet far from the slow
# variant's added 1.5 s; few checked answers needed, since a run lasts 3 s.
TEST_SLO = {
    "schema_version": 1,
    "environment": "test",
    "slo": {
        "latency_p95_ms": 1000,
        "latency_p99_ms": 2000,
        "max_error_ratio": 0.02,
        "min_rps": 1,
        "correctness": {"min_checked_answers": 5, "max_incorrect_answers": 0},
    },
    "load": {"users": 4, "spawn_rate": 4, "duration_s": 3, "max_requests": 2000, "invalid_ratio": 0.05},
}


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gate-corpus") / "audio"
    audio.ensure_corpus(folder)  # once per session: every gate run below reuses it
    return folder


@pytest.fixture
def thresholds_file(tmp_path) -> Path:
    path = tmp_path / "test-thresholds.yaml"
    path.write_text(yaml.safe_dump(TEST_SLO))
    return path


@pytest.fixture
def fake_server() -> Iterator[Callable[..., FakePredictionServer]]:
    started: list[FakePredictionServer] = []

    def start(**switches) -> FakePredictionServer:
        server = FakePredictionServer(Behaviour(model_version=EXPECTED_VERSION, **switches)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def run_gate(tmp_path, corpus_dir, thresholds_file) -> Callable[..., gate.GateResult]:
    def run(url: str, **overrides) -> gate.GateResult:
        config = {
            "url": url,
            "thresholds": thresholds_file,
            "out_dir": tmp_path / "report",
            "corpus_dir": corpus_dir,
            "expect_model_version": EXPECTED_VERSION,
            "ready_timeout_s": 3.0,
            **overrides,
        }
        return gate.run_gate(gate.GateConfig(**config))

    return run


def failed_slos(result: gate.GateResult) -> set[str]:
    assert result.verdict is not None, result.error
    return {c.slo for c in result.verdict.failed()}


def check(result: gate.GateResult, slo: str):
    assert result.verdict is not None, result.error
    return next(c for c in result.verdict.checks if c.slo == slo)
