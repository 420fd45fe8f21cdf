"""A sealed or unreachable Vault: every `spira secrets` command says so in one line and exits non-zero."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from spira.stack import LocalStack, StackInfo
from tests.integration.secrets.helpers import spira

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket closes


@pytest.fixture
def sealed(local_stack: StackInfo, local_stack_handle: LocalStack) -> Iterator[StackInfo]:
    local_stack.vault_client().sys.seal()
    try:
        yield local_stack
    finally:
        local_stack_handle.vault.init_and_unseal()  # the stack's own unseal path, as the runbook uses


def one_error_line(run) -> str:
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["status"], ["seed"], ["rotate", "--service", "serving"]])
def test_a_sealed_vault_is_reported_as_sealed_for_the_local_stack(
    sealed: StackInfo, command: list[str]
) -> None:
    run = spira("secrets", *command, "--env", "local", env={"SPIRA_HOME": str(sealed.home)})
    assert run.returncode == 1
    assert f"Vault at {sealed.vault_addr} is sealed" in one_error_line(run)


def test_a_sealed_vault_is_reported_as_sealed_for_a_cluster_environment(sealed: StackInfo) -> None:
    run = spira(
        "secrets",
        "rotate",
        "--env",
        "staging",
        "--service",
        "serving",
        env={
            "VAULT_ADDR": sealed.vault_addr,
            "VAULT_TOKEN": sealed.vault_root_token,
            "VAULT_CACERT": str(sealed.vault_ca),
        },
    )
    assert run.returncode == 1 and "is sealed" in one_error_line(run)


def test_a_cluster_vault_whose_ca_is_not_given_is_reported_as_a_tls_failure(local_stack: StackInfo) -> None:
    run = spira(
        "secrets",
        "status",
        "--env",
        "staging",
        env={
            "VAULT_ADDR": local_stack.vault_addr,
            "VAULT_TOKEN": local_stack.vault_root_token,
            "VAULT_CACERT": "",
        },
    )
    assert run.returncode == 1
    assert "failed TLS verification against the system's CAs (set VAULT_CACERT" in one_error_line(run)


def test_an_unreachable_vault_is_reported_as_unreachable(tmp_path) -> None:
    port = closed_port()
    run = spira(
        "secrets",
        "status",
        "--env",
        "production",
        env={"VAULT_ADDR": f"http://127.0.0.1:{port}", "VAULT_TOKEN": "s.whatever"},
    )
    assert run.returncode == 1
    assert f"Vault at http://127.0.0.1:{port} is unreachable" in one_error_line(run)
    run = spira(
        "secrets",
        "status",
        "--env",
        "local",
        env={"SPIRA_HOME": str(tmp_path), "SPIRA_VAULT_PORT": str(port)},
    )
    assert run.returncode == 1 and "unreachable" in one_error_line(run)


def test_the_stack_is_usable_again_after_the_unseal(local_stack: StackInfo) -> None:
    run = spira("secrets", "status", "--env", "local", env={"SPIRA_HOME": str(local_stack.home)})
    assert run.returncode == 0, run.stderr
