"""`spira gate` is the gate's own command line: the same parser, options and defaults as `spira-gate`."""

from __future__ import annotations

import pytest

import spira.gate_cli
from loadtests import gate
from spira.cli import main


def test_spira_gate_help_lists_every_option_of_the_gate(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["gate", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: spira gate")
    for option in gate.OPTIONS.values():
        assert option.metadata["flag"] in out


def test_spira_gate_runs_the_config_the_image_entry_point_would_parse(monkeypatch, tmp_path) -> None:
    argv = ["--url", "http://127.0.0.1:9", "--users", "3", "--duration", "2.5", "--out", str(tmp_path)]
    seen: list[gate.GateConfig] = []

    def run_gate(config: gate.GateConfig) -> gate.GateResult:
        seen.append(config)
        return gate.GateResult(exit_code=gate.COULD_NOT_RUN, url=config.url, error="not run in this test")

    monkeypatch.setattr(spira.gate_cli, "run_gate", run_gate)
    with pytest.raises(SystemExit) as exit_info:
        main(["gate", *argv])
    assert exit_info.value.code == gate.COULD_NOT_RUN
    assert seen == [gate.config_from_args(gate.parser().parse_args(argv))]


def test_spira_gate_without_url_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["gate", "--users", "3"])
    assert exit_info.value.code == 2
    assert "--url" in capsys.readouterr().err
