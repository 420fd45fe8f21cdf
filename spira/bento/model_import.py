"""Bring a registered model version from MLflow into the BentoML model store, with its feature parameters.

An alias is resolved to a version once, here; what is stored and pinned is that version.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from serving.pin import META_FILE, MODEL_NAME, ModelPin, PinMismatch
from spira_core.model import bundle_digest, load_bundle
from training.artifacts import find_output
from training.ports import ArtifactStore

MODEL_ARTIFACT_PATH = "model"  # where the training pipeline logs the bundle in its run


@dataclass(frozen=True)
class ResolvedModel:
    version: str
    run_id: str
    source: str
    requested: str
    train_key: str = ""  # the training stage that produced it (its bundle is also in the object store)


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
        return ResolvedModel(
            str(mv.version), mv.run_id or "", mv.source, ref, (mv.tags or {}).get("train_key", "")
        )

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


def import_model(source: ModelSource, ref: str) -> ModelPin:
    """Resolve, download and import (idempotently) into the BentoML store; returns the pin of what was
    imported."""
    resolved = source.resolve(ref)
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = source.download(resolved, Path(tmp))
        pin = ModelPin(
            MODEL_NAME,
            resolved.version,
            bundle_digest(bundle_dir),
            ref,
            resolved.run_id,
            f"train/{resolved.train_key}/model" if resolved.train_key else "",
        )
        store_bundle(pin, bundle_dir, source=resolved.source)
    return pin


def store_bundle(pin: ModelPin, bundle_dir: Path, source: str) -> None:
    """Put the pinned bundle into the BentoML model store under the pin's tag (a no-op when it is there).

    Refuses a bundle that is not the pinned one, a bundle that does not load, and a different model
    already stored under the same tag."""
    import bentoml

    pin.verify(bundle_dir)
    load_bundle(bundle_dir)  # refuse a broken bundle before it reaches the store
    try:
        existing = bentoml.models.get(pin.bento_tag)
    except bentoml.exceptions.NotFound:
        existing = None
    if existing is not None:
        if existing.info.metadata.get("bundle_sha256") != pin.bundle_sha256:
            raise PinMismatch(f"{pin.bento_tag} is already in the BentoML store with different contents")
        return
    meta = {
        "model_version": pin.mlflow_version,
        "run_id": pin.run_id,
        "bundle_sha256": pin.bundle_sha256,
        "resolved_from": pin.resolved_from,
        "source": source,
    }
    with bentoml.models.create(
        pin.bento_tag, labels={"mlflow_version": pin.mlflow_version}, metadata=meta
    ) as model:
        shutil.copytree(bundle_dir, Path(model.path) / "bundle")
        (Path(model.path) / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def stored_bundle_dir(pin: ModelPin) -> Path:
    """The pinned model's bundle in the BentoML store, checked against the pin."""
    import bentoml

    try:
        model = bentoml.models.get(pin.bento_tag)
    except bentoml.exceptions.NotFound as exc:
        raise FileNotFoundError(
            f"{pin.bento_tag} is not in the BentoML store: run `spira bento import` or `spira bento fetch`"
        ) from exc
    bundle_dir = Path(model.path) / "bundle"
    pin.verify(bundle_dir, what=f"the stored model {pin.bento_tag}")
    return bundle_dir


def fetch_pinned(pin: ModelPin, store: ArtifactStore) -> None:
    """The pinned bundle from the training pipeline's object store (where `pin.bundle_key` says), each file
    checked against its stage manifest, the whole against the pin; then stored in the BentoML store."""
    stage, _, key_and_path = pin.bundle_key.partition("/")
    key, _, folder = key_and_path.partition("/")
    if not (stage and key and folder):
        raise FileNotFoundError(
            f"the pin for version {pin.mlflow_version} records no bundle location (bundle_key): "
            "re-pin it with `spira bento import`"
        )
    output = find_output(store, stage, key)
    if output is None:
        raise FileNotFoundError(f"{stage}/{key} is not in the object store")
    names = [n for n in output.manifest["files"] if n.startswith(f"{folder}/")]
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = Path(tmp) / "bundle"
        bundle_dir.mkdir()
        for name in names:
            (bundle_dir / name.removeprefix(f"{folder}/")).write_bytes(output.read(name))
        store_bundle(pin, bundle_dir, source=f"object store: {pin.bundle_key}")
