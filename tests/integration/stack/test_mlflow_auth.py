"""The local MLflow runs MLflow's basic-auth app, as the clusters' does: nobody anonymous, each workload its
own user (from its Vault secret) with permissions only on what it creates."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from spira.secrets.seed import read_secret
from spira.stack import StackInfo

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def training_identity(local_stack: StackInfo, monkeypatch) -> dict[str, str]:
    """MLflow's client acting as the training workload, with the credentials its Vault secret holds."""
    secret = read_secret(local_stack.vault_client(), "local", "training")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", secret["mlflow_username"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", secret["mlflow_password"])
    return secret


def test_mlflow_refuses_an_anonymous_client_but_answers_its_health_check(local_stack: StackInfo) -> None:
    assert requests.get(f"{local_stack.mlflow_uri}/health", timeout=10).status_code == 200
    anonymous = requests.get(
        f"{local_stack.mlflow_uri}/api/2.0/mlflow/experiments/search",
        params={"max_results": 1},
        timeout=10,
    )
    assert anonymous.status_code in (401, 403)
    wrong = requests.get(
        f"{local_stack.mlflow_uri}/api/2.0/mlflow/experiments/search",
        params={"max_results": 1},
        auth=("spira-local-training", "not-its-password"),
        timeout=10,
    )
    assert wrong.status_code in (401, 403)


def test_the_admin_credential_is_kept_private_under_the_stack_home(local_stack: StackInfo) -> None:
    admin_file = local_stack.home / "mlflow" / "admin.json"
    assert stat.S_IMODE(admin_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((local_stack.home / "mlflow" / "basic_auth.ini").stat().st_mode) == 0o600
    assert local_stack.mlflow_admin is not None
    assert local_stack.shell_env()["MLFLOW_TRACKING_PASSWORD"] == local_stack.mlflow_admin[1]


def test_the_training_identity_from_vault_creates_a_run_and_registers_a_version_with_an_alias(
    local_stack: StackInfo, training_identity: dict[str, str], tmp_path
) -> None:
    import mlflow

    assert training_identity["mlflow_username"] == "spira-local-training"
    client = mlflow.MlflowClient(tracking_uri=local_stack.mlflow_uri, registry_uri=local_stack.mlflow_uri)
    exp_id = client.create_experiment(f"auth-test-{uuid.uuid4().hex[:8]}")
    run = client.create_run(exp_id)
    artifact = tmp_path / "evidence.txt"
    artifact.write_text("spira")
    client.log_artifact(run.info.run_id, str(artifact), "model")
    client.set_terminated(run.info.run_id)
    name = f"auth-test-model-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias(name, "candidate", version.version)
    assert client.get_model_version_by_alias(name, "candidate").run_id == run.info.run_id


def test_the_training_identity_cannot_read_an_experiment_another_user_created(
    local_stack: StackInfo, training_identity: dict[str, str]
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    admin_user, admin_password = local_stack.mlflow_admin
    created = requests.post(
        f"{local_stack.mlflow_uri}/api/2.0/mlflow/experiments/create",
        json={"name": f"operators-only-{uuid.uuid4().hex[:8]}"},
        auth=(admin_user, admin_password),
        timeout=10,
    )
    assert created.status_code == 200, created.text
    client = mlflow.MlflowClient(tracking_uri=local_stack.mlflow_uri)
    with pytest.raises(MlflowException, match=r"PERMISSION_DENIED|403"):
        client.get_experiment(created.json()["experiment_id"])


def test_a_training_publish_with_a_wrong_password_fails_with_one_line_naming_the_secret(
    local_stack: StackInfo, tmp_path
) -> None:
    code = (
        "from training.wiring import build_registry\n"
        "from training.ports import ServiceUnavailable\n"
        f"registry, _ = build_registry({local_stack.mlflow_uri!r}, 'spira-local-training', 'wrong')\n"
        "try:\n"
        "    registry.version_by_alias('spira-respiratory', 'champion')\n"
        "except ServiceUnavailable as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(lines) == 1
    assert lines[0].startswith("MLflow refused creating spira-respiratory at ")
    assert "(401)" in lines[0] and "mlflow_username/mlflow_password in the training secret" in lines[0]
