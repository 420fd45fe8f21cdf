"""Waiting for consumers: the TTL wait is resumable; the gauge wait reads Prometheus text exactly."""

from __future__ import annotations

import pytest
import requests

from spira.secrets.consumers import ConsumersNotReady, MetricsWait, TtlWait, gauge_value
from tests.fakes.secrets import WallClock

REF = "secret/spira/staging/serving"
EXPOSITION = f"""# HELP spira_secret_version KV version of the secret in use
# TYPE spira_secret_version gauge
spira_secret_version{{path="secret/spira/staging/training"}} 9.0
spira_secret_version{{service="serving",path="{REF}"}} 4.0
# TYPE http_requests_total counter
http_requests_total{{path="{REF}"}} 120.0
"""


def test_the_gauge_is_read_for_the_secrets_path_label_only() -> None:
    assert gauge_value(EXPOSITION, REF) == 4.0
    assert gauge_value(EXPOSITION, "secret/spira/staging/mlflow") is None


class Consumers:
    """Scripted /metrics answers, per URL, one per poll."""

    def __init__(self, answers: dict[str, list[str | Exception]]) -> None:
        self.answers = answers

    def __call__(self, url: str) -> str:
        queue = self.answers[url]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def gauge(version: int) -> str:
    return f'spira_secret_version{{path="{REF}"}} {version}\n'


def test_the_gauge_wait_returns_once_every_consumer_reports_the_version(monkeypatch) -> None:
    clock = WallClock()
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        clock.advance(s)

    fetch = Consumers(
        {
            "http://a/metrics": [gauge(4), gauge(5)],
            "http://b/metrics": [requests.ConnectionError("starting"), gauge(4), gauge(6)],
        }
    )
    MetricsWait(
        ["http://a/metrics", "http://b/metrics"],
        timeout_s=30,
        clock=clock,
        poll_s=1,
        margin_s=2,
        fetch=fetch,
        sleep=sleep,
    ).wait(REF, 5, clock.now)
    assert slept == [1, 1, 2], "two polls, then the margin"


def test_the_gauge_wait_names_the_lagging_consumer_when_it_times_out() -> None:
    clock = WallClock()
    fetch = Consumers(
        {
            "http://a/metrics": [gauge(5)],
            "http://b/metrics": [gauge(4)],
            "http://c/metrics": ["# nothing here\n"],
        }
    )
    with pytest.raises(ConsumersNotReady) as err:
        MetricsWait(
            ["http://a/metrics", "http://b/metrics", "http://c/metrics"],
            timeout_s=3,
            clock=clock,
            poll_s=1,
            fetch=fetch,
            sleep=clock.advance,
        ).wait(REF, 5, clock.now)
    message = str(err.value)
    assert "http://b/metrics: version 4" in message and "http://c/metrics: no gauge" in message
    assert "http://a/metrics" not in message and "rerun" in message


def test_the_ttl_wait_counts_from_publication_so_a_resumed_run_waits_only_the_rest() -> None:
    clock = WallClock()
    published = clock.now
    slept: list[float] = []
    clock.advance(100)
    TtlWait(30, 10, clock, sleep=slept.append).wait(REF, 2, published)
    assert slept == []
    TtlWait(30, 10, clock, sleep=slept.append).wait(REF, 2, clock.now)
    assert slept == [40]
