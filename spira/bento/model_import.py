"""Bring a registered model version from MLflow into the BentoML model store, with its feature parameters.

An alias is resolved to a version once, here; what is stored and pinned is that version.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from serving.pin import META_FILE, MODEL_NAME, ModelPin
from spira_core.model import load_bundle

MODEL_ARTIFACT_PATH = "model"  # where the training pipeline logs the bundle in its run


@dataclass(frozen=True)
class ResolvedModel:
    version: str
    run_id: str
    source: str
    requested: str


class ModelSource(ABC):
    @abstractmethod
    def resolve(self, ref: str) -> ResolvedModel:
        """A version number or an alias (candidate, champion) → one exact version."""

    @abstractmethod
    def download(self, model: ResolvedModel, dest: Path) -> Path:
        """Fetch the version's bundle directory into dest; returns the bundle dir."""


class MlflowModelSource(ModelSource):
    def __init__(self, tracking_uri: str, name: str = MODEL_NAME) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.name = name
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def resolve(self, ref: str) -> ResolvedModel:
        if ref == "latest":
            raise ValueError("refusing 'latest': name a version or an alias (candidate, champion)")
        mv = (
            self.client.get_model_version(self.name, ref)
            if ref.isdigit()
            else self.client.get_model_version_by_alias(self.name, ref)
        )
        return ResolvedModel(str(mv.version), mv.run_id or "", mv.source, ref)

    def download(self, model: ResolvedModel, dest: Path) -> Path:
        import mlflow.artifacts

        local = mlflow.artifacts.download_artifacts(
            run_id=model.run_id,
            artifact_path=MODEL_ARTIFACT_PATH,
            dst_path=str(dest),
            tracking_uri=self.tracking_uri,
        )
        bundle_dirs = [p.parent for p in Path(local).rglob("bundle.json")]
        if len(bundle_dirs) != 1:
            raise FileNotFoundError(
                f"model version {model.version}: expected one bundle in the run's "
                f"'{MODEL_ARTIFACT_PATH}' artifacts, found {len(bundle_dirs)}"
            )
        return bundle_dirs[0]


def bundle_sha256(bundle_dir: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in bundle_dir.rglob("*") if p.is_file()):
        h.update(f.relative_to(bundle_dir).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def import_model(source: ModelSource, ref: str) -> ModelPin:
    """Import (idempotently) into the BentoML store; returns the pin describing what was imported."""
    import bentoml

    resolved = source.resolve(ref)
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = source.download(resolved, Path(tmp))
        load_bundle(bundle_dir)  # refuse a broken bundle before it reaches the store
        digest = bundle_sha256(bundle_dir)
        pin = ModelPin(MODEL_NAME, resolved.version, digest, ref, resolved.run_id)
        try:
            existing = bentoml.models.get(pin.bento_tag)
        except bentoml.exceptions.NotFound:
            existing = None
        if existing is not None:
            if existing.info.metadata.get("bundle_sha256") != digest:
                raise ValueError(f"{pin.bento_tag} is already in the BentoML store with different contents")
            return pin
        meta = {
            "model_version": resolved.version,
            "run_id": resolved.run_id,
            "bundle_sha256": digest,
            "resolved_from": ref,
            "source": resolved.source,
        }
        with bentoml.models.create(
            pin.bento_tag, labels={"mlflow_version": resolved.version}, metadata=meta
        ) as model:
            shutil.copytree(bundle_dir, Path(model.path) / "bundle")
            (Path(model.path) / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return pin
