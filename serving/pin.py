"""The served model, pinned in git (serving/model.lock.json) by version and by the sha256 of its bundle.

`spira bento import --model VERSION_OR_ALIAS` resolves the alias once, imports that exact version into the
BentoML model store and writes the pin; `bentoml build` packs the pinned model; the service reads the pin to
know its model and writes nothing. The bundle's hash is checked wherever the bundle changes hands: the
import, `spira bento build`, the image build and the server's start refuse a bundle whose hash differs.
The BentoML tag names the hash too, so two stacks' "version 1" (MLflow numbers per server) never collide in
one user's BentoML store.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from spira_core.model import bundle_digest

MODEL_NAME = "spira-respiratory"
PIN_FILE = Path(__file__).with_name("model.lock.json")
# `spira serve --model X` serves another version without touching the pin in git: it writes a pin elsewhere
# and points the server at it.
PIN_OVERRIDE_ENV = "SPIRA_MODEL_PIN"
META_FILE = "meta.json"


class PinMismatch(ValueError):
    """A model bundle that is not the one the pin names."""


@dataclass(frozen=True)
class ModelPin:
    name: str
    mlflow_version: str
    bundle_sha256: str
    resolved_from: str
    run_id: str
    # where the training pipeline's object store keeps this bundle (`train/<key>/model`), so CI can fetch it
    # with a read-only key instead of reaching MLflow; empty in pins written before it was recorded
    bundle_key: str = ""

    @property
    def bento_tag(self) -> str:
        return f"{self.name}:mlflow-v{self.mlflow_version}-{self.bundle_sha256[:12]}"

    def verify(self, bundle_dir: Path, what: str = "the bundle") -> None:
        """Raise PinMismatch unless the bundle in `bundle_dir` is the pinned one, byte for byte."""
        found = bundle_digest(bundle_dir)
        if found != self.bundle_sha256:
            raise PinMismatch(
                f"refusing {what} at {bundle_dir}: its sha256 is {found}, the pin "
                f"({self.name} version {self.mlflow_version}) names {self.bundle_sha256}"
            )

    def write(self, path: Path = PIN_FILE) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: Path | None = None) -> ModelPin:
        path = path or Path(os.environ.get(PIN_OVERRIDE_ENV) or PIN_FILE)
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"{path} is missing: run `spira bento import --model VERSION_OR_ALIAS` to pin a model"
            ) from exc


def read_model_meta(model_dir: Path) -> dict[str, str]:
    """What the import recorded beside the bundle in the BentoML model (version, run, hash)."""
    return json.loads((model_dir / META_FILE).read_text())


def verified_bundle_dir(model_dir: Path) -> Path:
    """The BentoML model's bundle, checked against the hash the import recorded: a server (or an image
    build) refuses a bundle that changed after it was pinned."""
    recorded = read_model_meta(model_dir).get("bundle_sha256", "")
    bundle_dir = model_dir / "bundle"
    found = bundle_digest(bundle_dir)
    if found != recorded:
        raise PinMismatch(
            f"refusing the model at {bundle_dir}: its sha256 is {found}, it was pinned as {recorded}"
        )
    return bundle_dir
