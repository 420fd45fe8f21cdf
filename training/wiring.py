"""Builds the pipeline's adapters from the training service's settings (one wiring function per entry point).

Settings are the training service's Vault secret: s3_endpoint, s3_access_key, s3_secret_key,
features_bucket, mlflow_tracking_uri, mlflow_username, mlflow_password (its own MLflow user). The CLI reads
them from Vault (spira_core.settings) or from a JSON file.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spira_core.vector_math import start_vector_math
from training.adapters.s3 import S3ArtifactStore
from training.adapters.system import SeededRandom, SystemClock
from training.data.dataset import load_dataset_csv, load_noise_csv
from training.pipeline import Pipeline
from training.ports import ModelRegistry
from training.presets import Preset

REQUIRED_SETTINGS = (
    "s3_endpoint",
    "s3_access_key",
    "s3_secret_key",
    "features_bucket",
    "mlflow_tracking_uri",
    "mlflow_username",
    "mlflow_password",
)


class SettingsError(ValueError):
    pass


def load_versioned_settings(settings_file: Path | None = None) -> tuple[Mapping[str, str], int]:
    """From a JSON file when given (version 0: unknown), else the training service's Vault secret and its
    KV version."""
    from spira_core.run_lease import UNKNOWN_VERSION

    if settings_file is not None:
        data, version = json.loads(Path(settings_file).read_text()), UNKNOWN_VERSION
    else:
        # reads VAULT_ADDR / VAULT_ROLE / VAULT_SECRET_PATH
        from spira_core.settings import service_secret_version

        read = service_secret_version("training")
        data, version = read.data, read.version
    missing = [k for k in REQUIRED_SETTINGS if not data.get(k)]
    if missing:
        raise SettingsError(f"training settings lack {', '.join(missing)}")
    return data, version


def load_settings(settings_file: Path | None = None) -> Mapping[str, str]:
    """From a JSON file when given, else the training service's Vault secret."""
    return load_versioned_settings(settings_file)[0]


def run_lease(settings: Mapping[str, str], secret_version: int):
    """The run's lease on its S3 key (a context manager around the run): `spira secrets rotate --service
    training` waits for it before revoking the key the run read."""
    from training.adapters.run_lease import S3RunLease

    return S3RunLease(
        settings["s3_endpoint"],
        settings["s3_access_key"],
        settings["s3_secret_key"],
        settings["features_bucket"],
        secret_version,
    )


def git_commit() -> str:
    """The commit being trained: SPIRA_GIT_COMMIT in containers, else git, else 'unknown'."""
    if os.environ.get("SPIRA_GIT_COMMIT"):
        return os.environ["SPIRA_GIT_COMMIT"]
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_registry(tracking_uri: str, username: str, password: str) -> tuple[ModelRegistry, str]:
    from training.adapters.mlflow_registry import MlflowRegistry

    # MLflow's client takes basic-auth credentials only from the environment (read at each request):
    # set in this process from the training secret, never passed to the container as variables.
    os.environ["MLFLOW_TRACKING_USERNAME"] = username
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    # MLflow's client retries a dead server for minutes by default; a stage should fail in seconds
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    return MlflowRegistry(tracking_uri), tracking_uri


def open_holdout(settings: Mapping[str, str], ref: str | None) -> Any:
    """The frozen holdout: `ref` (a local dataset.csv or folder, or s3://) when given, else the features
    bucket's current one (None when none was ever frozen)."""
    from spira_core.clinical.source import open_holdout as open_ref
    from training.holdout import from_store

    if ref:
        return open_ref(ref)
    keys = (settings[k] for k in ("s3_endpoint", "s3_access_key", "s3_secret_key", "features_bucket"))
    return from_store(S3ArtifactStore(*keys, prefix="holdout"))


def build_pipeline(
    settings: Mapping[str, str],
    dataset_csv: Path,
    noise_csv: Path,
    preset: Preset,
    progress: Any = None,
    holdout: str | None = None,
    clinical_thresholds: str = "local",
) -> Pipeline:
    store = S3ArtifactStore(
        settings["s3_endpoint"],
        settings["s3_access_key"],
        settings["s3_secret_key"],
        settings["features_bucket"],
    )
    kwargs: dict[str, Any] = {"clinical_thresholds": clinical_thresholds}
    # bad data is the caller's error: said before any service is reached (the holdout is read from S3)
    load_dataset_csv(dataset_csv)
    load_noise_csv(noise_csv)
    # before torch's first op in several threads: a concurrent first call left one half of a tensor
    # ~1e-5 off and made seeded training write different weights (spira_core.vector_math)
    start_vector_math()
    if progress is not None:
        kwargs["progress"] = progress
    return Pipeline.from_csv(
        dataset_csv,
        noise_csv,
        holdout=open_holdout(settings, holdout),
        store=store,
        clock=SystemClock(),
        random=SeededRandom(preset.seed),
        preset=preset,
        registry_factory=lambda: build_registry(
            settings["mlflow_tracking_uri"], settings["mlflow_username"], settings["mlflow_password"]
        ),
        tags={"git_commit": git_commit()},
        **kwargs,
    )
