"""The clinical gate's object-store key, read from Vault as the gate, reads the frozen holdout and nothing
else on the real SeaweedFS of the local stack (infra/environments.yaml `object_store_access.gate`), and the
rendered clinical-gate Job's command line, run with the Job's own environment, judges over HTTP with it.

The Job's command is taken from the rendered local AnalysisTemplate (its args substituted as Argo does) and
run as a process with only the Job's variables (plus the local stand-in for its projected token): it logs
in as the gate's workload role for the holdout key and as the gate's client role for /predict, reads a
holdout frozen into the features bucket, scores it on two servers (the fake prediction server, real
sockets) and exits 0 for a model judged against itself. The same Job's container, from the gate image by
digest, runs in tests/e2e/test_pod_spec.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ci.kube_play import substitute
from infra.vault import clients
from spira.manifests.render import render_docs
from spira.stack import StackInfo
from spira_core.settings import service_secret
from tests.fakes.prediction_server import Behaviour, FakePredictionServer
from tests.fixtures.object_store_access import denied, own_client
from tests.unit.training.conftest import write_dataset
from training import holdout as training_holdout

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
HOLDOUT = "holdout/"


@pytest.fixture(scope="module")
def gate_key(local_stack: StackInfo):
    return own_client(local_stack, "gate")


@pytest.fixture(scope="module")
def frozen_in_store(local_stack: StackInfo, gate_key, tmp_path_factory) -> str:
    """A small frozen holdout written by the operator under holdout/<version>/ of the features bucket
    (CURRENT is not moved: other tests' publish stage judges on the bucket's current holdout)."""
    _, secret = gate_key
    data = write_dataset(tmp_path_factory.mktemp("gate-holdout") / "data", n_per_class=6)
    frozen = training_holdout.freeze(data.dataset_csv, data.noise_csv)
    folder = f"{HOLDOUT}{frozen.holdout.version}-{uuid.uuid4().hex[:6]}/"
    admin = local_stack.s3_client()
    for rel, body in frozen.files.items():
        admin.put_object(Bucket=secret["features_bucket"], Key=folder + rel, Body=body)
    return f"s3://{secret['features_bucket']}/{folder}"


def test_the_gates_key_reads_the_holdout_and_cannot_list_write_or_read_elsewhere(
    local_stack: StackInfo, gate_key, frozen_in_store: str
) -> None:
    s3, secret = gate_key
    features = secret["features_bucket"]
    folder = frozen_in_store.removeprefix(f"s3://{features}/")
    assert s3.get_object(Bucket=features, Key=folder + "dataset.csv")["Body"].read().startswith(b"file_path")
    assert denied(lambda: s3.list_objects_v2(Bucket=features))
    assert denied(lambda: s3.list_objects_v2(Bucket=features, Prefix=HOLDOUT))
    assert denied(lambda: s3.put_object(Bucket=features, Key=folder + "dataset.csv", Body=b"forged"))
    assert denied(lambda: s3.put_object(Bucket=features, Key=f"{HOLDOUT}CURRENT", Body=b"h0\n"))
    assert denied(lambda: s3.delete_object(Bucket=features, Key=folder + "dataset.csv"))
    # the features bucket outside holdout/ (training's features, the promotion evidence), and the archive
    elsewhere = f"probe/{uuid.uuid4().hex}"
    local_stack.s3_client().put_object(Bucket=features, Key=elsewhere, Body=b"mfcc")
    assert denied(lambda: s3.get_object(Bucket=features, Key=elsewhere))
    assert denied(lambda: s3.get_object(Bucket=features, Key="holdoutX/" + elsewhere))
    archive = service_secret("serving", local_stack.service_env("serving"))["archive_bucket"]
    assert denied(lambda: s3.list_objects_v2(Bucket=archive))
    assert denied(lambda: s3.put_object(Bucket=archive, Key=f"uploads/{uuid.uuid4().hex}", Body=b"x"))


def job_command(url: str, baseline: str, holdout: str, out: Path) -> tuple[list[str], dict[str, str]]:
    """The rendered local clinical-gate Job's command line (args substituted) and its env values."""
    (template,) = [
        d
        for d in render_docs("local")
        if d["kind"] == "AnalysisTemplate" and d["metadata"]["name"] == "spira-clinical-gate"
    ]
    values = {a["name"]: a["value"] for a in template["spec"]["args"] if "value" in a}
    values.update({"preview-url": url, "active-url": baseline, "holdout": holdout})
    (metric,) = template["spec"]["metrics"]
    (container,) = substitute(metric["provider"]["job"]["spec"]["template"]["spec"]["containers"], values)
    assert container["command"] == ["spira", "gate", "clinical"]
    args = list(container["args"])
    args[args.index("--out") + 1] = str(out)  # the Job's emptyDir, here a test folder
    return args, {e["name"]: e["value"] for e in container["env"]}


def test_the_rendered_clinical_gate_job_command_passes_a_model_judged_against_itself_with_the_jobs_credentials(
    local_stack: StackInfo, frozen_in_store: str, tmp_path: Path
) -> None:
    with FakePredictionServer(Behaviour()) as candidate, FakePredictionServer(Behaviour()) as baseline:
        baseline_url = baseline.url
        args, job_env = job_command(candidate.url, baseline_url, frozen_in_store, tmp_path / "out")
        gate_env = local_stack.service_env("gate")
        assert job_env["VAULT_ROLE"] == gate_env["VAULT_ROLE"]
        assert job_env["VAULT_SECRET_PATH"] == gate_env["VAULT_SECRET_PATH"]
        assert job_env["VAULT_PREDICT_ROLE"] == clients.role_name(local_stack.env_name, "gate")
        # only the Job's variables (the stack's Vault address and the signer standing in for the projected
        # token): no AWS variable, no operator credential
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(REPO),
            "HOME": str(tmp_path),
            **job_env,
            **{
                k: v
                for k, v in gate_env.items()
                if k in ("VAULT_ADDR", "VAULT_JWT_SIGNER_KEY", "VAULT_JWT_SUBJECT")
            },
        }
        proc = subprocess.run(
            [sys.executable, "-m", "spira.clinical.gate", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    verdict = json.loads((tmp_path / "out" / "verdict.json").read_text())
    assert verdict["verdict"] == "PASS" and verdict["holdout"]["ref"] == frozen_in_store
    assert verdict["baseline"]["source"] == baseline_url.rstrip("/")


def test_the_job_without_a_readable_holdout_key_cannot_run(local_stack: StackInfo, tmp_path: Path) -> None:
    gate_env = local_stack.service_env("gate")
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path),
        **gate_env,
        # the serving secret: the gate's role may not read it
        "VAULT_SECRET_PATH": local_stack.service_env("serving")["VAULT_SECRET_PATH"],
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "spira.clinical.gate",
            "--url",
            "http://127.0.0.1:9",
            "--baseline-url",
            "http://127.0.0.1:9",
            "--holdout",
            "s3://spira-local-features/holdout/",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "no key for the holdout" in proc.stdout, proc.stdout + proc.stderr
