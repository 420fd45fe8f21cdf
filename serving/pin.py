"""The served model version, pinned in git (serving/model.lock.json), never `latest`.

`spira bento import --model VERSION_OR_ALIAS` resolves the alias once, imports that exact version into the
BentoML model store and writes the pin; `bentoml build` packs the pinned model; the service reads the pin to
know its model and writes nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

MODEL_NAME = "spira-respiratory"
PIN_FILE = Path(__file__).with_name("model.lock.json")
# `spira serve --model X` serves another version without touching the pin in git: it writes a pin elsewhere
# and points the server at it.
PIN_OVERRIDE_ENV = "SPIRA_MODEL_PIN"
META_FILE = "meta.json"


@dataclass(frozen=True)
class ModelPin:
    name: str
    mlflow_version: str
    bundle_sha256: str
    resolved_from: str
    run_id: str

    @property
    def bento_tag(self) -> str:
        return f"{self.name}:mlflow-v{self.mlflow_version}"

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
