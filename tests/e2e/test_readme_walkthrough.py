"""The README's step-by-step block, run as it stands in one bash shell, in a fresh SPIRA_HOME.

Only the documented ports are moved to free ones (the suite's own stack runs beside it). The BentoML store
is shared with "another stack" that already holds a different model registered as version 1 there: both
stacks' version 1 must be served from one user's store without a collision.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from serving.pin import MODEL_NAME, ModelPin
from spira.stack.net import free_port
from spira.stack.private import free_stack_ports, private_home
from spira_core.model import ModelBundle, SpiraConvV2, bundle_digest, save_bundle
from spira_core.params import FeatureParams
from tests.fixtures.model import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BEGIN, END = "<!-- readme-walkthrough: begin -->", "<!-- readme-walkthrough: end -->"


def readme_block() -> str:
    text = (REPO / "README.md").read_text()
    block = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    body = re.search(r"```bash\n(.*?)```", block, re.S)
    assert body, "the README's walkthrough has no bash block"
    return body.group(1)


def _other_stacks_version_1(bentoml_home: Path, work: Path) -> str:
    """Import a different model as `version 1` into the shared BentoML store, as another stack would."""
    torch.manual_seed(123)
    params = FeatureParams()
    bundle = work / "other-bundle"
    save_bundle(ModelBundle(SpiraConvV2(input_frames=params.input_frames), params, 0.5, {}), bundle)
    pin = ModelPin(MODEL_NAME, "1", bundle_digest(bundle), "candidate", "other-run")
    pin.write(work / "other.lock.json")
    script = (
        "import sys; from pathlib import Path; from serving.pin import ModelPin; "
        "from spira.bento.model_import import store_bundle; "
        "store_bundle(ModelPin.read(Path(sys.argv[1])), Path(sys.argv[2]), source='another stack')"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(work / "other.lock.json"), str(bundle)],
        cwd=REPO,
        env={**os.environ, "BENTOML_HOME": str(bentoml_home), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    return pin.bento_tag


def test_the_readme_commands_run_in_order_in_one_shell_on_a_fresh_stack(tmp_path: Path) -> None:
    home = private_home()
    bentoml_home = tmp_path / "bentoml"
    other_tag = _other_stacks_version_1(bentoml_home, tmp_path)
    port = free_port()
    script = readme_block().replace("3000", str(port))
    # a fresh shell: nothing of an operator's or a workload's environment leaks in
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VAULT_", "AWS_", "MLFLOW_", "SPIRA_", "BENTOML_"))
    }
    env |= {
        "SPIRA_HOME": str(home),
        "BENTOML_HOME": str(bentoml_home),
        "COLUMNS": "200",
        **{f"SPIRA_{name.upper()}": str(p) for name, p in free_stack_ports().items()},
    }
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=1500)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        subprocess.run(
            [str(REPO / ".venv/bin/spira"), "stack", "down"],
            env=env,
            cwd=REPO,
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(home, ignore_errors=True)
    assert proc.returncode == 0, output[-6000:]
    assert re.search(rf"registered {MODEL_NAME} version 1 ", output), output[-3000:]
    assert re.search(r'"probability": 0\.\d+', output), output[-3000:]  # spira predict's JSON line
    assert "PASS" in output, output[-3000:]  # the gate
    assert "rotated" in output.lower(), output[-3000:]
    # both stacks' "version 1" live side by side in the one BentoML store
    tags = subprocess.run(
        [str(REPO / ".venv/bin/bentoml"), "models", "list", "-o", "json"],
        env={**env, "BENTOML_HOME": str(bentoml_home)},
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert other_tag in tags and tags.count(f"{MODEL_NAME}:mlflow-v1-") == 2, tags
