"""`spira infra plan|diff` through the CLI root."""

from __future__ import annotations

from click.testing import CliRunner

from spira.cli import cli


def test_plan_prints_the_resources_of_a_stack_as_a_table() -> None:
    result = CliRunner().invoke(cli, ["infra", "plan", "--stack", "production"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "spira-pools-gpu" in result.output
    assert "targetRevision=main" in result.output
    assert "AL2023_x86_64_NVIDIA" in result.output


def test_plan_refuses_an_unknown_stack() -> None:
    result = CliRunner().invoke(cli, ["infra", "plan", "--stack", "dev"])
    assert result.exit_code == 2
    assert "--stack must be one of staging, production" in result.output


def test_diff_passes_when_only_allowlisted_values_differ() -> None:
    result = CliRunner().invoke(cli, ["infra", "diff"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "all in the allowlist" in result.output
