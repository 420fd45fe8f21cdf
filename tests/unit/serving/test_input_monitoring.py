"""Per-site input monitoring through the HTTP app: the `site` field, bounded labels, drift per site."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
import soundfile as sf
from starlette.testclient import TestClient

from serving.app import create_app
from serving.batching import Batching
from serving.inference import Predictor
from serving.metrics import prometheus_metrics
from serving.monitoring import InputMonitor, MonitoringSettings
from serving.runtime import ServingRuntime
from serving.settings import SETTINGS
from serving.wiring import input_monitor
from spira_core import audio as A
from spira_core.features import mfcc
from spira_core.monitoring import DriftReference, observe_input
from spira_core.params import FeatureParams
from tests.fakes.serving import FakeWindowModel, RecordingInputMetrics, RecordingMetrics, wav_bytes

SITES = MonitoringSettings(sites=("hc-sp", "hu-sp"), window_uploads=8)


def _reference() -> DriftReference:
    """Training's histogram: the MFCCs of a few clean voice-like clips."""
    params = FeatureParams()
    frames = [
        mfcc(A.load_audio(wav_bytes(5.0, 48_000, seed=s, amplitude=0.2 + 0.05 * s)), params) for s in range(6)
    ]
    return DriftReference.from_frames(np.concatenate(frames))


def _runtime(
    metrics: RecordingInputMetrics, reference: DriftReference | None, settings=SITES
) -> ServingRuntime:
    predictor = Predictor(
        FeatureParams(), 0.5, "7", FakeWindowModel(0.3), batching=Batching(64, 1.0), drift_reference=reference
    )
    runtime = ServingRuntime(predictor, metrics)
    runtime.monitor = InputMonitor(reference, metrics, settings)
    return runtime


def _app(runtime: ServingRuntime):
    return create_app(lambda: runtime)


def _post(client: TestClient, audio: bytes, site: str | None = None, synthetic: bool = False):
    data = {"site": site} if site is not None else {}
    headers = {"X-Spira-Synthetic": "gate"} if synthetic else {}
    return client.post("/predict", files={"audio": ("a.wav", audio, "audio/wav")}, data=data, headers=headers)


def _clipped(seed: int) -> bytes:
    samples, rate = sf.read(io.BytesIO(wav_bytes(5.0, 48_000, seed=seed, amplitude=0.9)), dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, np.clip(samples * 8, -0.9, 0.9), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def reference() -> DriftReference:
    return _reference()


def test_an_upload_with_a_declared_site_is_measured_under_that_site(reference) -> None:
    metrics = RecordingInputMetrics()
    with TestClient(_app(_runtime(metrics, reference))) as client:
        assert _post(client, wav_bytes(5.0, 44_100, seed=9), site="HC-SP").status_code == 200
    ((site, quality),) = metrics.qualities
    assert site == "hc-sp"
    assert quality.duration_s == pytest.approx(5.0) and quality.sample_rate == 44_100
    assert quality.clipping_ratio == 0.0 and quality.silence_ratio == 0.0  # a steady tone, no pause
    score, uploads = metrics.drift["hc-sp"]
    assert uploads == 1 and score >= 0


def test_unknown_sites_fold_into_other_and_no_site_is_unspecified(reference) -> None:
    metrics = RecordingInputMetrics()
    with TestClient(_app(_runtime(metrics, reference))) as client:
        for site in ("clinic-1", "clinic-2", "x" * 500, None):
            assert _post(client, wav_bytes(seed=1), site=site).status_code == 200
    assert [s for s, _ in metrics.qualities] == ["other", "other", "other", "unspecified"]
    assert set(metrics.drift) == {"other", "unspecified"} and metrics.drift["other"][1] == 3


def test_the_gates_synthetic_load_is_not_monitored(reference) -> None:
    metrics = RecordingInputMetrics()
    with TestClient(_app(_runtime(metrics, reference))) as client:
        assert _post(client, wav_bytes(), site="hc-sp", synthetic=True).status_code == 200
    assert metrics.qualities == [] and metrics.drift == {} and len(metrics.predictions) == 1


def test_a_batch_reports_each_file_under_the_batchs_site(reference) -> None:
    metrics = RecordingInputMetrics()
    files = [("audio", (f"{i}.wav", wav_bytes(seed=i), "audio/wav")) for i in range(3)]
    with TestClient(_app(_runtime(metrics, reference))) as client:
        resp = client.post("/predict_batch", files=files, data={"site": "hu-sp"})
    assert resp.status_code == 200
    assert [s for s, _ in metrics.qualities] == ["hu-sp"] * 3 and metrics.drift["hu-sp"][1] == 3


def test_clipped_uploads_of_one_site_raise_its_drift_and_leave_the_other_sites(reference) -> None:
    metrics = RecordingInputMetrics()
    with TestClient(_app(_runtime(metrics, reference))) as client:
        for seed in range(10, 18):
            _post(client, wav_bytes(5.0, 48_000, seed=seed, amplitude=0.25), site="hc-sp")
            _post(client, _clipped(seed), site="hu-sp")
    clean, clipped = metrics.drift["hc-sp"][0], metrics.drift["hu-sp"][0]
    assert clipped > 3 * clean
    assert max(q.clipping_ratio for s, q in metrics.qualities if s == "hu-sp") > 0.1
    assert all(q.clipping_ratio == 0 for s, q in metrics.qualities if s == "hc-sp")


def test_a_bundle_without_a_drift_reference_keeps_serving_with_quality_only_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = RecordingInputMetrics()
    with caplog.at_level(logging.WARNING, logger="serving.monitoring"):
        runtime = _runtime(metrics, None)
    assert "no drift reference" in caplog.text
    with TestClient(create_app(lambda: runtime)) as client:
        assert _post(client, wav_bytes(), site="hc-sp").status_code == 200
    assert len(metrics.qualities) == 1 and metrics.drift == {}


def test_the_sites_and_window_come_from_the_serving_settings_and_bad_values_keep_the_defaults() -> None:
    assert {"monitored_sites", "drift_window_uploads"} <= set(SETTINGS)
    declared = MonitoringSettings.from_settings({"monitored_sites": "b, a", "drift_window_uploads": "20"})
    assert declared == MonitoringSettings(("a", "b"), 20)
    assert declared.labels == ("a", "b", "other", "unspecified")
    assert MonitoringSettings.from_settings({"drift_window_uploads": "x"}) == MonitoringSettings()
    assert input_monitor(None, RecordingMetrics(), {}) is None


def test_prometheus_exports_the_drift_gauge_and_quality_histograms_per_site(reference) -> None:
    from prometheus_client import generate_latest

    metrics = prometheus_metrics()
    monitor = InputMonitor(reference, metrics, SITES)
    samples = sf.read(io.BytesIO(wav_bytes(seed=3)), dtype="float32")[0]
    frames = mfcc(A.resample(samples, 48_000, 16_000), FeatureParams())
    monitor.observe("hc-sp", observe_input(samples, 48_000, frames, reference))
    text = generate_latest().decode()
    assert 'spira_input_drift_score{site="hc-sp"}' in text
    assert 'spira_input_drift_window_uploads{site="hc-sp"} 1.0' in text
    for name in ("duration_seconds", "sample_rate_hz", "clipping_ratio", "silence_ratio", "snr_db"):
        assert f'spira_input_{name}_count{{site="hc-sp"}} 1.0' in text
