"""One wiring function for the server: model bundle + environment → a ServingRuntime."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from serving.archive import LOCAL_SPOOL_ENV, SPOOL_DIR, ArchiveSettings, Spool
from serving.batching import Batching
from serving.inference import Predictor
from serving.metrics import ModelChoiceMetrics, ServingMetrics, prometheus_metrics
from serving.monitoring import InputMetrics, InputMonitor, MonitoringSettings
from serving.pin import read_model_meta, verified_bundle_dir
from serving.runtime import ServingRuntime
from spira_core.model import load_bundle
from spira_core.vault import CachedSecret


def torch_threads(count: int) -> None:
    """torch's intra-op threads for this process. Its default counts the node's cores, not the pod's CPU
    limit: a 1-CPU pod on a 32-core node would run 32 OpenMP threads per op. The server's parallelism is
    its compute threads (one per usable core, serving.inference.Predictor), so its ops run in one thread;
    the queue worker has one compute thread, whose ops may use the usable cores. (One intra-op thread also
    keeps clear of a torch/MKL fault seen on an AVX-512 host: docs/performance.md, 2026-12-07 12:28.)"""
    import torch

    torch.set_num_threads(max(1, count))


def warm_up(predictor: Predictor) -> None:
    """One prediction on a generated clip before /readyz turns green: the first patient waits for nothing
    (resampler set-up, numba compilation in librosa, torch kernels)."""
    import io

    import numpy as np
    import soundfile as sf

    t = np.arange(48_000 * 5) / 48_000
    buf = io.BytesIO()
    sf.write(
        buf, (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), 48_000, format="WAV", subtype="PCM_16"
    )
    predictor.predict_bytes(buf.getvalue())


def batching_settings(secret: CachedSecret | None) -> Batching | Callable[[], Batching]:
    """The serving secret's batching settings, read from its cache at each batch (an operator's change
    applies within the cache TTL, with no restart); without Vault (a local run), serving's defaults."""
    if secret is None:
        return Batching()
    return lambda: Batching.from_settings(secret.cached())


def archive_spool(settings: ArchiveSettings, env: Mapping[str, str], metrics: ServingMetrics) -> Spool:
    """The spool on the volume the pods share (SPOOL_DIR), each pod in its own folder (its host name: the
    pod's name in a cluster). The server only writes it; the uploader process (serving/uploader.py, the
    pod's sidecar) uploads from it and adopts the folders of pods gone for `orphan_after_s`."""
    import socket

    return Spool(
        Path(env.get(LOCAL_SPOOL_ENV) or SPOOL_DIR),
        metrics,
        max_spool_bytes=settings.max_spool_bytes,
        owner=env.get("HOSTNAME") or socket.gethostname(),
    )


def first_settings(secret: CachedSecret) -> Mapping[str, str]:
    """The serving secret at start (its settings), or nothing when Vault cannot answer yet: the server
    then starts on serving's defaults and stays unready until the secret is readable."""
    try:
        return secret.get()
    except Exception:
        return {}


def input_monitor(reference, metrics: ServingMetrics, settings: Mapping[str, str]) -> InputMonitor | None:
    """Per-site input monitoring with the sites the serving secret declares (read at start: the label set
    is fixed for the process's life); None when the metrics adapter does not take input measures."""
    if not isinstance(metrics, InputMetrics):
        return None
    return InputMonitor(reference, metrics, MonitoringSettings.from_settings(settings))


def build_runtime(
    model_dir: Path, environ: Mapping[str, str] | None = None, metrics: ServingMetrics | None = None
) -> ServingRuntime:
    env = os.environ if environ is None else environ
    metrics = metrics or prometheus_metrics()
    torch_threads(1)
    bundle = load_bundle(verified_bundle_dir(model_dir))
    meta = read_model_meta(model_dir)
    # the Prometheus metrics also count a refused fast path (ModelChoiceMetrics); a test's fake may not
    choice = metrics if isinstance(metrics, ModelChoiceMetrics) else None
    secret_path = env.get("VAULT_SECRET_PATH", "")
    secret = spool = None
    if env.get("VAULT_ADDR"):
        from spira_core.settings import cached_service_secret

        secret = cached_service_secret(env)
    predictor = Predictor.from_bundle(
        bundle, model_version=meta["model_version"], metrics=choice, batching=batching_settings(secret)
    )
    if secret is not None:
        spool = archive_spool(ArchiveSettings.from_settings(first_settings(secret)), env, metrics)
        spool.start()
    warm_up(predictor)
    runtime = ServingRuntime(predictor, metrics, secret, secret_path, spool)
    runtime.monitor = input_monitor(bundle.drift_reference, metrics, first_settings(secret) if secret else {})
    if secret is not None:
        runtime.refresh_secret()  # first read now: /readyz and the gauge are right from the start
        runtime.start_secret_refresher(max(0.5, secret.ttl_s / 2))
    return runtime
