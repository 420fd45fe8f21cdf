"""The post-promotion analysis's PromQL (argocd/base/error-rate-analysistemplate.yaml) evaluated for real: a
healthy colour (the suite's `bentoml serve` of the trained model) passes, a colour whose every prediction
answers 500 (a real `bentoml serve` of tests/fakes/failing_service.py) fails. A private Prometheus, rendered
like the stack's, scrapes both every second under the labels their pods would carry.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from spira.local_server import server_env, start_local_server
from spira.stack.prometheus import PrometheusService, query
from tests.fixtures.model import REPO, ServedModel
from tests.integration.monitoring.test_prometheus_monitoring import (
    NAMESPACE,
    _host_port,
    _post,
    _wait_for,
    _wav,
)

pytestmark = pytest.mark.integration

TEMPLATE = REPO / "argocd" / "base" / "error-rate-analysistemplate.yaml"
HEALTHY, FAILING = "5d8f7c9b4", "7f6b9d8c5"  # pod-template hashes of the two colours


def _scraped(prometheus: PrometheusService, pod: str) -> None:
    _wait_for(
        lambda: query(prometheus.url, f'up{{pod="{pod}"}} == 1'), what=f"{pod} scraped by {prometheus.url}"
    )


def _analysis() -> tuple[str, str]:
    """The error-rate metric's query and success condition, as the AnalysisTemplate declares them."""
    (metric,) = yaml.safe_load(TEMPLATE.read_text())["spec"]["metrics"]
    return metric["provider"]["prometheus"]["query"], metric["successCondition"]


def _render(template: str, args: dict[str, str]) -> str:
    return re.sub(r"\{\{args\.([a-z-]+)\}\}", lambda m: args[m.group(1)], template)


def _succeeds(condition: str, result: list[float]) -> bool:
    """Argo's expr condition for this template's grammar (len, isNaN, ||, <=) on the query's result."""
    python = condition.replace("||", " or ").replace("&&", " and ")
    if not set(re.findall(r"[A-Za-z_]+", python)) <= {"len", "result", "isNaN", "or", "and"}:
        raise AssertionError(f"the success condition uses more than this evaluator knows: {condition}")
    return bool(eval(python, {"__builtins__": {}}, {"len": len, "isNaN": math.isnan, "result": result}))


def _measure(prometheus: PrometheusService, pod_template_hash: str) -> list[float]:
    query_text, _ = _analysis()
    args = {
        "prometheus-address": prometheus.url,
        "namespace": NAMESPACE,
        "pod-template-hash": pod_template_hash,
    }
    return [float(r["value"][1]) for r in query(prometheus.url, _render(query_text, args))]


def test_the_post_promotion_query_passes_a_healthy_colour_and_fails_one_that_answers_5xx(
    served_model: ServedModel, fast_prometheus: PrometheusService, tmp_path: Path
) -> None:
    failing = start_local_server(
        server_env(tmp_path / "bentoml", tmp_path / "unused.lock.json"),
        tmp_path,
        name="failing-colour",
        wait_path="/livez",
        service="tests.fakes.failing_service:FailingColour",
    )
    try:
        healthy_pod, failing_pod = f"spira-model-{HEALTHY}-a1", f"spira-model-{FAILING}-b2"
        fast_prometheus.add_target(
            "healthy", _host_port(served_model.url), {"namespace": NAMESPACE, "pod": healthy_pod}
        )
        fast_prometheus.add_target(
            "failing", _host_port(failing.url), {"namespace": NAMESPACE, "pod": failing_pod}
        )
        _, condition = _analysis()
        # no traffic yet on the new colour: no evidence of failure
        assert _succeeds(condition, _measure(fast_prometheus, "0000000000"))
        _scraped(fast_prometheus, healthy_pod)
        _scraped(fast_prometheus, failing_pod)
        audio = _wav(*_clips_for_analysis())
        deadline = time.monotonic() + 6  # traffic across several scrapes, so rate() sees it rise
        while time.monotonic() < deadline:
            assert _post(served_model.url, audio).status_code == 200
            assert _post(failing.url, audio).status_code == 500

        def measured() -> list[float] | None:
            bad = _measure(fast_prometheus, FAILING)
            # the healthy colour's traffic reached Prometheus too (its 5xx series does not exist at all)
            seen = query(
                fast_prometheus.url,
                f'sum(rate(bentoml_service_request_total{{pod=~"spira-model-{HEALTHY}-.*",endpoint="/predict"}}[2m])) > 0',
            )
            return bad if bad and bad[0] > 0 and seen else None

        bad = _wait_for(measured, what="both colours' traffic scraped")
        good = _measure(fast_prometheus, HEALTHY)
        assert good in ([], [0.0]) and _succeeds(condition, good), good
        assert bad[0] > 0.9 and not _succeeds(condition, bad), bad
    finally:
        failing.stop()


def _clips_for_analysis() -> tuple[np.ndarray, int]:
    t = np.arange(48_000 * 3) / 48_000
    return 0.3 * np.sin(2 * np.pi * 150 * t), 48_000
