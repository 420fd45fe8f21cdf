"""A tiny real Bento for the image machinery tests: BentoML serving the prediction contract without a model.

It answers POST /predict like the SPIRA service (multipart field `audio`, JSON with probability, label,
model_version, threshold, windows) and refuses what is not a WAV with a 400, so the gate and the contract
tests behave against it as against the real model. The machinery under test (build, push, run by digest,
kube play) does not care what the Bento computes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SERVICE = """\
from __future__ import annotations

import io
import os
import wave
from pathlib import Path

import bentoml
from bentoml.exceptions import InvalidArgument

MODEL_VERSION = {model_version!r}


@bentoml.service(name="spira-fake")
class FakeSpira:
    @bentoml.api(route="/predict")
    def predict(self, audio: Path) -> dict:
        try:
            with wave.open(io.BytesIO(Path(audio).read_bytes())) as wav:
                seconds = wav.getnframes() / float(wav.getframerate())
        except (wave.Error, EOFError, ZeroDivisionError) as exc:
            raise InvalidArgument(f"not a WAV recording: {{exc}}") from exc
        if seconds <= 0:
            raise InvalidArgument("empty recording")
        windows = max(1, int(seconds // 4))
        return {{"probability": 0.25, "label": "control", "model_version": MODEL_VERSION,
                "threshold": 0.5, "windows": windows}}

    @bentoml.api(route="/info")
    def info(self) -> dict:
        return {{"model_version": MODEL_VERSION, "vault_addr_set": bool(os.environ.get("VAULT_ADDR"))}}
"""

BENTOFILE = """\
service: "fake_service:FakeSpira"
name: spira-fake
labels:
  model_version: "{model_version}"
include:
  - "fake_service.py"
python:
  lock_packages: false
"""


def build_fake_bento(export_dir: Path, model_version: str) -> Path:
    """`bentoml build` of the fake service in a private BENTOML_HOME, copied to export_dir."""
    work = Path(tempfile.mkdtemp(prefix="spira-fake-bento-"))
    home = Path(tempfile.mkdtemp(prefix="spira-fake-bentoml-home-"))  # outside work: not part of the Bento
    try:
        (work / "fake_service.py").write_text(SERVICE.format(model_version=model_version))
        (work / "bentofile.yaml").write_text(BENTOFILE.format(model_version=model_version))
        env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
        bentoml = Path(sys.executable).parent / "bentoml"
        proc = subprocess.run(
            [str(bentoml), "build", "--output", "tag", "."], cwd=work, env=env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RuntimeError(f"bentoml build failed:\n{proc.stdout}\n{proc.stderr}")
        built = next((home / "bentos" / "spira-fake").iterdir())
        if built.name == "latest":
            built = next(p for p in (home / "bentos" / "spira-fake").iterdir() if p.name != "latest")
        if export_dir.exists():
            shutil.rmtree(export_dir)
        shutil.copytree(built, export_dir)
        return export_dir
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
