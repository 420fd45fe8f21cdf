"""The CLI refuses bad input before touching Vault, with one line and a non-zero exit."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from spira.secrets.cli import app

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env={"VAULT_ADDR": "", "VAULT_TOKEN": "", **(env or {})})


@pytest.mark.parametrize(
    "args,message",
    [
        (["status", "--env", "qa"], "unknown environment 'qa'"),
        (["rotate", "--env", "staging", "--service", "objectstore"], "no s3 credential of its own"),
        (["rotate", "--env", "staging", "--service", "serving", "--key", "db"], "unknown key 'db'"),
        (["seed", "--env", "staging", "--engine", "ceph"], "unknown object-store engine 'ceph'"),
        (["status", "--env", "staging"], "VAULT_ADDR and VAULT_TOKEN must be set for --env staging"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_1(args, message) -> None:
    result = run(*args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output


def test_rotate_help_names_the_resumable_steps_and_the_consumer_gauge() -> None:
    result = run("rotate", "--help")
    assert result.exit_code == 0
    assert "--consumer" in result.output and "spira_secret_version" in result.output
