"""MLflow tracking + model registry adapter (the server proxies artifacts: clients need only its URI)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import requests

from training.ports import ModelRegistry, ModelVersionInfo, RunRecord, ServiceUnavailable

EXPERIMENT = "spira-training"
MODEL_ARTIFACT_PATH = "model"
T = TypeVar("T")


def _refused(exc: Exception) -> int | None:
    """401/403 when MLflow's auth app refused the request (its message carries the status code)."""
    text = str(exc)
    for code in (401, 403):
        if f"error code {code}" in text or f"{code} Client Error" in text:
            return code
    return None


class MlflowRegistry(ModelRegistry):
    def __init__(self, tracking_uri: str, experiment: str = EXPERIMENT) -> None:
        from mlflow.tracking import MlflowClient  # heavy import, only when publishing

        self.tracking_uri = tracking_uri.rstrip("/")
        self.experiment = experiment
        self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from mlflow.exceptions import MlflowException

        try:
            return fn()
        except (MlflowException, requests.RequestException, OSError) as exc:
            raise self._unavailable(what, exc) from exc

    def _unavailable(self, what: str, exc: Exception) -> ServiceUnavailable:
        """One line: a refused credential names the secret's keys to check; anything else says what failed."""
        code = _refused(exc)
        if code:
            return ServiceUnavailable(
                f"MLflow refused {what} at {self.tracking_uri} ({code}): check "
                "mlflow_username/mlflow_password in the training secret"
            )
        return ServiceUnavailable(f"MLflow at {self.tracking_uri}: {what} failed: {exc}")

    def check(self) -> None:
        """Fail fast with a clear message when the server is down (MLflow's own retries take minutes)."""
        try:
            requests.get(f"{self.tracking_uri}/health", timeout=5).raise_for_status()
        except requests.RequestException as exc:
            raise ServiceUnavailable(f"MLflow at {self.tracking_uri} is not reachable: {exc}") from exc

    def _experiment_id(self) -> str:
        found = self._client.get_experiment_by_name(self.experiment)
        return found.experiment_id if found else self._client.create_experiment(self.experiment)

    def log_run(self, record: RunRecord) -> str:
        from mlflow.entities import Metric, Param, RunTag

        self.check()
        experiment_id = self._call("finding the experiment", self._experiment_id)
        run = self._call(
            "creating a run",
            lambda: self._client.create_run(experiment_id, run_name=record.name, tags=dict(record.tags)),
        )
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        params = [Param(k, v) for k, v in sorted(record.params.items())]
        metrics = [Metric(k, float(v), now, 0) for k, v in sorted(record.metrics.items())]
        for step, row in enumerate(record.epoch_metrics):
            metrics.extend(Metric(k, float(v), now, step) for k, v in sorted(row.items()))
        for i in range(0, max(len(params), 1), 100):
            self._call(
                "logging params", lambda i=i: self._client.log_batch(run_id, params=params[i : i + 100])
            )
        for i in range(0, len(metrics), 1000):
            self._call(
                "logging metrics", lambda i=i: self._client.log_batch(run_id, metrics=metrics[i : i + 1000])
            )
        self._call(
            "tagging",
            lambda: self._client.log_batch(run_id, tags=[RunTag(k, v) for k, v in record.tags.items()]),
        )
        with tempfile.TemporaryDirectory() as tmp:
            for rel, data in record.artifacts.items():
                path = Path(tmp) / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            self._call("uploading artifacts", lambda: self._client.log_artifacts(run_id, tmp))
        self._call(
            "uploading the model",
            lambda: self._client.log_artifacts(run_id, str(record.model_dir), MODEL_ARTIFACT_PATH),
        )
        self._call("finishing the run", lambda: self._client.set_terminated(run_id, "FINISHED"))
        return run_id

    def _ensure_model(self, model_name: str) -> None:
        """Create the registered model unless it exists. Behind MLflow's auth app with no default permission
        a missing model and a forbidden one both answer 403, so reads come after this; creating it gives
        this identity MANAGE on it (its versions and aliases)."""
        from mlflow.exceptions import MlflowException

        try:
            self._client.create_registered_model(model_name)
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" in str(exc.error_code):
                return
            raise self._unavailable(f"creating {model_name}", exc) from exc
        except requests.RequestException as exc:
            raise self._unavailable(f"creating {model_name}", exc) from exc

    def register(self, model_name: str, run_id: str, tags: Mapping[str, str]) -> ModelVersionInfo:
        self._ensure_model(model_name)
        run = self._call("reading the run", lambda: self._client.get_run(run_id))
        source = f"{run.info.artifact_uri}/{MODEL_ARTIFACT_PATH}"
        mv = self._call(
            "registering a version",
            lambda: self._client.create_model_version(model_name, source, run_id=run_id, tags=dict(tags)),
        )
        return ModelVersionInfo(version=str(mv.version), run_id=run_id, tags=dict(tags))

    def version_by_alias(self, model_name: str, alias: str) -> ModelVersionInfo | None:
        from mlflow.exceptions import MlflowException

        self._ensure_model(model_name)
        try:
            mv = self._client.get_model_version_by_alias(model_name, alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return None
            raise self._unavailable(f"reading alias {alias}", exc) from exc
        except requests.RequestException as exc:
            raise self._unavailable(f"reading alias {alias}", exc) from exc
        return ModelVersionInfo(version=str(mv.version), run_id=mv.run_id or "", tags=dict(mv.tags or {}))

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        self._call(
            f"setting alias {alias}",
            lambda: self._client.set_registered_model_alias(model_name, alias, version),
        )

    def set_version_tags(self, model_name: str, version: str, tags: Mapping[str, str]) -> None:
        for k, v in tags.items():
            self._call(
                "tagging a version",
                lambda k=k, v=v: self._client.set_model_version_tag(model_name, version, k, v),
            )

    def download_model(self, model_name: str, version: str, directory: Path) -> Path:
        mv = self._call("reading a version", lambda: self._client.get_model_version(model_name, version))
        return Path(
            self._call(
                f"downloading version {version}",
                lambda: self._client.download_artifacts(mv.run_id, MODEL_ARTIFACT_PATH, str(directory)),
            )
        )
