"""`spira bento import` resolves an alias to one version; `spira bento build` packs exactly that model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.model import REPO, RegisteredModel, ServedModel

pytestmark = pytest.mark.integration


def test_import_resolves_an_alias_to_its_version(
    registered_model: RegisteredModel, served_model: ServedModel
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(registered_model.tracking_uri)
    client.set_registered_model_alias("spira-respiratory", "bento-test", registered_model.version)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "BENTOML_HOME": served_model.env["BENTOML_HOME"],
        "MLFLOW_TRACKING_URI": registered_model.tracking_uri,
    }
    out = subprocess.run(
        [sys.executable, "-m", "spira.cli", "bento", "import", "--model", "bento-test", "--no-pin"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bento_model"].startswith(f"spira-respiratory:mlflow-v{registered_model.version}-")
    assert result["mlflow_version"] == registered_model.version
    assert result["resolved_from"] == "bento-test"
    assert result["bundle_sha256"][:12] == result["bento_model"].rsplit("-", 1)[1]
    refused = subprocess.run(
        [sys.executable, "-m", "spira.cli", "bento", "import", "--model", "latest", "--no-pin"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode != 0 and "latest" in (refused.stdout + refused.stderr)


def test_the_built_bento_carries_the_pinned_model_and_its_feature_parameters(
    served_model: ServedModel, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "BENTOML_HOME": served_model.env["BENTOML_HOME"],
        "SPIRA_MODEL_PIN": served_model.env["SPIRA_MODEL_PIN"],
    }
    out = subprocess.run(
        [sys.executable, "-m", "spira.cli", "bento", "build", "--export-dir", str(tmp_path / "bento")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    bento = tmp_path / "bento"
    pin = json.loads((bento / "src" / "serving" / "model.lock.json").read_text())
    assert pin["mlflow_version"] == served_model.version
    meta = yaml.safe_load((bento / "bento.yaml").read_text())
    tags = [m["tag"] for s in meta["services"] for m in s["models"]]
    assert tags == [f"spira-respiratory:mlflow-v{served_model.version}-{pin['bundle_sha256'][:12]}"]
    model_dir = bento / "models" / "spira-respiratory" / tags[0].partition(":")[2]
    assert json.loads((model_dir / "bundle" / "feature_params.json").read_text())["n_mfcc"] == 40
    assert not (bento / "src" / "training").exists()  # serving never carries training code
    # only what the pod runs: no operator CLI, no model import, no fault injection
    shipped = {p.name for p in (bento / "src" / "serving").glob("*.py")}
    assert not {"cli.py", "model_import.py", "degrade.py"} & shipped, shipped
