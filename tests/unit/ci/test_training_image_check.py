"""CI's test of the training image by digest (ci/ephemeral_training.py): every step the WorkflowTemplate
renders with that digest runs its own command with --help, restricted like the step pod and offline."""

from __future__ import annotations

from ci.ephemeral_training import TrainingReport, help_run_args, step_commands
from spira.workflow import render as R
from training.pipeline import STAGE_NAMES

REF = "127.0.0.1:5000/spira/training@sha256:" + "ef" * 32


def test_the_check_covers_every_step_the_workflow_template_renders_with_that_digest():
    commands = step_commands(REF)
    assert set(commands) == {*STAGE_NAMES, R.CHECK, R.CANDIDATE}
    assert commands["train"][:3] == ["spira", "pipeline", "train"] and "--preset" in commands["train"]


def test_each_step_runs_its_own_command_offline_read_only_as_the_step_user_with_help():
    command = step_commands(REF)["features"]
    args = help_run_args(REF, command)
    assert args[args.index("--network") + 1] == "none" and "--read-only" in args
    assert args[args.index("--user") + 1] == "10001:10001" and args[args.index("--cap-drop") + 1] == "ALL"
    assert args[args.index("--entrypoint") + 1] == command[0]
    assert args[args.index(REF) + 1 :] == [*command[1:], "--help"]


def test_the_report_passes_only_when_every_step_exited_zero():
    assert TrainingReport(REF, {"features": 0, "train": 0}).passed
    assert not TrainingReport(REF, {"features": 0, "train": 2}).passed
    assert not TrainingReport(REF, {}).passed
    assert not TrainingReport(REF, {"features": 0}, error="PodmanError: pull failed").passed
