"""Prometheus for real: the stack's Prometheus (the declared job, the alert rules, servers as targets), and
per-site input drift sent through the HTTP API of the suite's real `bentoml serve` (`served_model`) and read
back from a private Prometheus rendered like the stack's, scraping every second under a pod's labels.
The post-promotion analysis's PromQL: test_post_promotion_analysis.py.
"""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import requests
import scipy.signal
import soundfile as sf
import yaml

from infra.environments import declared
from spira.local_server import scrape_in_stack
from spira.stack import StackConfig, StackInfo
from spira.stack.prometheus import PrometheusService, query
from tests.contract.client import auth_headers
from tests.fixtures.model import RegisteredModel, ServedModel

pytestmark = pytest.mark.integration

NAMESPACE = "spira"
HEALTHY = "5d8f7c9b4"  # the pod-template hash the served model is labelled with


def _wait_for(check, timeout_s: float = 30.0, what: str = ""):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not seen within {timeout_s:.0f} s: {what}")


def _host_port(url: str) -> str:
    return url.removeprefix("http://").rstrip("/")


def _post(url: str, audio: bytes, site: str | None = None) -> requests.Response:
    data = {"site": site} if site else {}
    files = {"audio": ("clip.wav", audio, "audio/wav")}
    return requests.post(f"{url}/predict", files=files, data=data, headers=auth_headers(), timeout=60)


# -- the stack's Prometheus ----------------------------------------------------------------------------


def test_the_stacks_prometheus_is_up_with_the_declared_job_and_the_alert_rules(
    local_stack: StackInfo,
) -> None:
    url = local_stack.prometheus_url
    assert url and local_stack.shell_env()["PROMETHEUS_URL"] == url
    assert requests.get(f"{url}/-/ready", timeout=5).status_code == 200
    config = yaml.safe_load(requests.get(f"{url}/api/v1/status/config", timeout=5).json()["data"]["yaml"])
    assert [j["job_name"] for j in config["scrape_configs"]] == ["prometheus", "spira-pods"]
    groups = requests.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    alerts = {r["name"] for g in groups for r in g["rules"]}
    assert {
        "SpiraInputDrift",
        "SpiraHighErrorRate",
        "SpiraSecretStale",
        "SpiraArchiveDroppedUploads",
    } <= alerts


def test_a_server_started_for_the_stack_becomes_a_target_labelled_like_a_pod(local_stack: StackInfo) -> None:
    url = str(local_stack.prometheus_url)

    def discovered() -> list[dict]:
        targets = requests.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        return [t for t in targets if t["labels"].get("pod") == "spira-model-probe"]

    scrape_in_stack(local_stack.home, "probe", url)  # any /metrics will do: Prometheus's own
    try:
        (target,) = _wait_for(discovered, 15, "the target file picked up")
        assert target["labels"]["namespace"] == "local" and target["labels"]["job"] == "spira-pods"
        assert target["scrapeUrl"] == f"{url}/metrics"
    finally:
        PrometheusService(StackConfig.load(local_stack.home)).remove_target("probe")
    _wait_for(lambda: not discovered(), 15, "the target removed")


# -- per-site drift, through the HTTP API and read back from Prometheus --------------------------------


def _clips(model: RegisteredModel, n: int) -> list[tuple[np.ndarray, int]]:
    paths = sorted((model.data_dir / "clips").glob("*.wav"))[:n]
    return [sf.read(p, dtype="float32") for p in paths]


def _wav(samples: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _band_limited(samples: np.ndarray, rate: int) -> np.ndarray:
    """A telephone line: 300–3400 Hz."""
    sos = scipy.signal.butter(8, [300, 3400], btype="bandpass", fs=rate, output="sos")
    return scipy.signal.sosfilt(sos, samples, axis=0)


def _clipped(samples: np.ndarray, rate: int) -> np.ndarray:
    """A gain stage driven into its rails: clipped at a tenth of the peak, then brought back to 0.9."""
    level = 0.1 * float(np.max(np.abs(samples)))
    return np.clip(samples, -level, level) / level * 0.9


def test_a_sites_drift_rises_for_band_limited_or_clipped_uploads_and_stays_low_for_training_like_audio(
    served_model: ServedModel, registered_model: RegisteredModel, fast_prometheus: PrometheusService
) -> None:
    sites = declared().serving_settings("local")["monitored_sites"].split(",")
    assert len(sites) >= 3, "infra/environments.yaml declares the local stack's monitored sites"
    in_distribution, band_limited, clipped = sites[:3]
    fast_prometheus.add_target(
        "drift", _host_port(served_model.url), {"namespace": NAMESPACE, "pod": f"spira-model-{HEALTHY}-drift"}
    )
    for samples, rate in _clips(registered_model, 12):
        for site, change in (
            (in_distribution, None),
            (band_limited, _band_limited),
            (clipped, _clipped),
        ):
            audio = _wav(change(samples, rate) if change else samples, rate)
            assert _post(served_model.url, audio, site).status_code == 200

    def scores() -> dict[str, float] | None:
        found = {
            r["metric"]["site"]: float(r["value"][1])
            for r in query(fast_prometheus.url, "spira_input_drift_score")
            if r["metric"].get("site") in sites
        }
        # one scrape that saw every site's twelfth upload (the score and the histograms come with it)
        full = {
            r["metric"]["site"]
            for r in query(fast_prometheus.url, "spira_input_drift_window_uploads == 12")
            if r["metric"].get("site") in sites
        }
        return found if len(found) == 3 and len(full) == 3 else None

    drift = _wait_for(scores, what="the three sites' drift scores after 12 uploads each")
    print("drift per site after 12 uploads each:", drift)
    assert drift[in_distribution] < 0.35, drift
    assert drift[band_limited] > 2 * drift[in_distribution], drift
    assert drift[clipped] > 2 * drift[in_distribution], drift
    # the quality histograms say why: the clipped site's uploads sit above 1 % flat-topped samples
    over = query(
        fast_prometheus.url,
        'sum by (site) (spira_input_clipping_ratio_count) - sum by (site) (spira_input_clipping_ratio_bucket{le="0.01"})',
    )
    flat = {r["metric"]["site"]: float(r["value"][1]) for r in over}
    assert flat[clipped] == 12 and flat[in_distribution] == 0
