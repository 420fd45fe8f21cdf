"""A private Prometheus rendered like the stack's (same scrape job, same rules), scraping every second."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from spira.stack.config import StackConfig
from spira.stack.net import free_port, wait_until
from spira.stack.prometheus import PrometheusService

FAST = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}


@pytest.fixture(scope="module")
def fast_prometheus() -> Iterator[PrometheusService]:
    home = Path(tempfile.mkdtemp(prefix="spira-prometheus-"))
    service = PrometheusService(StackConfig(home=home, prometheus_port=free_port()), overrides=FAST)
    service.write_config()
    proc = service.process()
    proc.start()
    try:
        assert wait_until(service.healthy, 30, abort=proc.exited_early), proc.log_tail(20)
        yield service
    finally:
        proc.stop()
        shutil.rmtree(home, ignore_errors=True)
