"""`spira secrets` as operators run it, against the local stack and (as staging) the same OpenBao and
SeaweedFS wired the way a cluster is: VAULT_ADDR + an operator token, the admin secret read from Vault."""

from __future__ import annotations

import pytest

from infra.queue_auth import USERS
from infra.vault import layout
from spira.stack import StackInfo
from tests.fixtures.stack import mlflow_login
from tests.integration.secrets.helpers import s3_put_works, spira

pytestmark = pytest.mark.integration


def test_seed_keeps_what_the_stack_seeded_and_status_lists_every_secret(local_stack: StackInfo) -> None:
    home = {"SPIRA_HOME": str(local_stack.home)}
    seeded = spira("secrets", "seed", "--env", "local", env=home)
    assert seeded.returncode == 0, seeded.stderr
    # the intake's and workers' NATS users were put in their nats_url when the stack started
    nats = seeded.stdout.count("NATS user kept")
    assert nats == len(USERS)
    # every workload's secret, and training's MLflow user
    assert seeded.stdout.count("kept") - nats == sum(s.workload for s in layout.SERVICES.values()) + 1
    status = spira("secrets", "status", "--env", "local", env=home)
    assert status.returncode == 0, status.stderr
    for service in layout.SERVICES:
        assert layout.secret_ref("local", service) in status.stdout
    assert "current version" in status.stdout and "last rotated" in status.stdout


@pytest.fixture(scope="module")
def staging_operator(local_stack: StackInfo) -> dict[str, str]:
    """What Pulumi sets up in a staging Vault, applied here by root: staging's policies and the object
    store's admin secret and MLflow's admin (here the local MLflow's, reached with --mlflow-url); then a
    token holding only the staging operator policy, as an operator has."""
    root = local_stack.vault_client()
    for name, hcl in layout.policies("staging").items():
        root.sys.create_or_update_policy(name=name, policy=hcl)
    path = layout.secret_path("staging", "objectstore")
    root.secrets.kv.v2.create_or_update_secret(
        path=path,
        mount_point=layout.KV_MOUNT,
        secret={
            "admin_access_key": local_stack.s3_access_key,
            "admin_secret_key": local_stack.s3_secret_key,
            "endpoint": local_stack.s3_endpoint,
        },
    )
    admin_user, admin_password = local_stack.mlflow_admin
    root.secrets.kv.v2.create_or_update_secret(
        path=layout.secret_path("staging", "mlflow-admin"),
        mount_point=layout.KV_MOUNT,
        secret={"username": admin_user, "password": admin_password},
    )
    token = root.auth.token.create(
        policies=[layout.operator_policy_name("staging")], ttl="15m", no_default_policy=False
    )["auth"]["client_token"]
    return {
        "VAULT_ADDR": local_stack.vault_addr,
        "VAULT_TOKEN": token,
        "VAULT_CACERT": str(local_stack.vault_ca),
    }


def test_a_staging_operator_seeds_rotates_and_reads_status_with_the_configured_engine(
    local_stack: StackInfo, staging_operator: dict[str, str]
) -> None:
    seeded = spira(
        "secrets", "seed", "--env", "staging", "--mlflow-url", local_stack.mlflow_uri, env=staging_operator
    )
    assert seeded.returncode == 0, seeded.stderr
    root = local_stack.vault_client()
    serving = root.secrets.kv.v2.read_secret_version(
        path=layout.secret_path("staging", "serving"),
        mount_point=layout.KV_MOUNT,
        raise_on_deleted_version=True,
    )["data"]
    data = serving["data"]
    assert data["archive_bucket"] == "spira-staging-archive"
    assert s3_put_works(local_stack, data["s3_access_key"], data["s3_secret_key"], "spira-staging-archive")
    training = root.secrets.kv.v2.read_secret_version(
        path=layout.secret_path("staging", "training"),
        mount_point=layout.KV_MOUNT,
        raise_on_deleted_version=True,
    )["data"]["data"]
    assert training["mlflow_tracking_uri"].endswith(".svc.cluster.local:5000")
    assert training["mlflow_username"] == "spira-staging-training"
    whoami = mlflow_login(local_stack.mlflow_uri, training["mlflow_username"], training["mlflow_password"])
    assert whoami.status_code == 200, whoami.text

    rotated = spira(
        "secrets",
        "rotate",
        "--env",
        "staging",
        "--service",
        "serving",
        "--consumer-ttl",
        "0",
        "--margin",
        "0",
        env=staging_operator,
    )
    assert rotated.returncode == 0, rotated.stderr
    assert not s3_put_works(
        local_stack, data["s3_access_key"], data["s3_secret_key"], "spira-staging-archive"
    )

    status = spira("secrets", "status", "--env", "staging", env=staging_operator)
    assert status.returncode == 0, status.stderr
    row = next(line for line in status.stdout.splitlines() if "secret/spira/staging/serving " in line)
    assert f" {serving['metadata']['version'] + 1} " in row and "never" not in row


def test_a_staging_operator_token_is_refused_another_environments_secrets(
    staging_operator: dict[str, str],
) -> None:
    run = spira("secrets", "status", "--env", "production", env=staging_operator)
    assert run.returncode == 1 and "permission denied" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
