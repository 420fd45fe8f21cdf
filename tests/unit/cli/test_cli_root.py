"""The `spira` root: fast help, clean usage errors, lazy sub-commands."""

from __future__ import annotations

import subprocess
import sys

import pytest

from spira.cli import COMMANDS, main


def test_help_lists_every_command_without_importing_torch() -> None:
    code = "import sys; from spira.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")
    for name in COMMANDS:
        assert name in out


def test_an_unknown_command_is_a_usage_error_not_a_traceback(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "No such command" in capsys.readouterr().err


def test_a_typer_exit_inside_a_sub_command_keeps_its_code(tmp_path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["stack", "env", "--home", str(tmp_path)])  # no stack there: a clean error, exit 1
    assert exit_info.value.code == 1
