"""A Vault that accepts connections and never answers costs the served model nothing: /predict and /info
answer as fast as before, /readyz stays green for the whole grace period (from the cache alone), then
turns red, and the pod recovers on its own once Vault answers again."""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable

import pytest

from spira.stack import StackInfo
from spira_core.vault import VaultSettings
from tests.contract.test_http_contract import _clip, _get, _post
from tests.fixtures import model as fixture
from tests.fixtures.vault_proxy import VaultProxy

pytestmark = pytest.mark.integration

TTL_S = 1.0
GRACE_S = 12.0  # long enough for the first read to time out inside it
VAULT_TIMEOUT_S = VaultSettings.__dataclass_fields__["timeout_s"].default
FAST_S = VAULT_TIMEOUT_S / 2  # every request must stay far below one Vault timeout


def _timed(call: Callable[[], int]) -> tuple[int, float]:
    start = time.monotonic()
    status = call()
    return status, time.monotonic() - start


def test_a_hanging_vault_slows_neither_predict_nor_info_and_the_pod_stays_ready_through_the_grace(
    local_stack: StackInfo, registered_model: fixture.RegisteredModel, served_model: fixture.ServedModel
) -> None:
    proxy = VaultProxy(int(local_stack.vault_addr.rsplit(":", 1)[1]))
    home = fixture.second_server_home(served_model)
    served = fixture.start_server(
        local_stack,
        registered_model,
        home,
        extra_env={"VAULT_ADDR": proxy.addr, "VAULT_SECRET_TTL_S": str(TTL_S), "VAULT_GRACE_S": str(GRACE_S)},
    )
    clip = _clip(4.0, 16_000)
    calls = {
        "/predict": lambda: _post(f"{served.url}/predict", [("audio", "a.wav", clip)])[0],
        "/info": lambda: _get(f"{served.url}/info")[0],
        "/readyz": lambda: _get(f"{served.url}/readyz")[0],
    }
    try:
        assert _get(f"{served.url}/readyz")[0] == 200
        proxy.hang()
        hung_at = time.monotonic()
        # The last good read was at most TTL + one refresh interval + a read before hung_at, so the secret is
        # usable until at least hung_at + GRACE - 0.5 s: sample every path until a second before that.
        samples: dict[str, list[tuple[int, float]]] = {path: [] for path in calls}
        while time.monotonic() - hung_at < GRACE_S - 1.5:
            for path, call in calls.items():
                samples[path].append(_timed(call))
            time.sleep(0.1)
        report = {
            path: f"n={len(s)} median={statistics.median(t for _, t in s):.3f}s max={max(t for _, t in s):.3f}s"
            for path, s in samples.items()
        }
        print(f"while Vault hangs (timeout {VAULT_TIMEOUT_S:g} s): {report}")
        for path, s in samples.items():
            assert all(status == 200 for status, _ in s), (path, [status for status, _ in s], report)
            assert max(t for _, t in s) < FAST_S, (path, report)
        secret = fixture.get_json(f"{served.url}/info")["readiness"]["secret"]
        assert secret["stale"] and "ReadTimeout" in secret["last_error"], secret  # Vault did time out

        time.sleep(max(0.0, hung_at + TTL_S + GRACE_S + 1 - time.monotonic()))  # past any last read's grace
        status, took = _timed(calls["/readyz"])
        assert status == 503 and took < FAST_S
        for path in ("/predict", "/info"):
            status, took = _timed(calls[path])
            assert status == 200 and took < FAST_S, (path, status, took)

        proxy.restore()
        deadline = time.monotonic() + 3 * VAULT_TIMEOUT_S + 10  # a read in flight times out, then backoff
        while time.monotonic() < deadline and _get(f"{served.url}/readyz")[0] != 200:
            time.sleep(0.3)
        assert _get(f"{served.url}/readyz")[0] == 200
        assert not fixture.get_json(f"{served.url}/info")["readiness"]["secret"]["stale"]
    finally:
        fixture.stop_server(served)
        proxy.close()
        shutil.rmtree(home, ignore_errors=True)
