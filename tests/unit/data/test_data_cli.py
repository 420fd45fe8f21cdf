"""`spira data synth` and `spira data check` through the CLI root, as a user types them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from click.testing import CliRunner

from spira.cli import cli


def run(*args: str):
    # rich sizes tables from COLUMNS when not on a terminal; wide enough that headings stay on one line
    return CliRunner().invoke(cli, ["data", *args], catch_exceptions=False, env={"COLUMNS": "200"})


def test_synth_writes_the_dataset_and_prints_a_summary_table(tmp_path: Path) -> None:
    result = run("synth", "--out", str(tmp_path), "--n", "4", "--seed", "3", "--n-noise", "1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "dataset.csv").read_text().count("\n") == 5
    assert (tmp_path / "noise.csv").read_text().count("\n") == 2
    for heading in ("control", "patient", "HNR dB", "jitter %", "noise clips: monitor_beeps: 1"):
        assert heading in result.output


def test_check_reports_counts_rates_and_the_fingerprint_of_a_good_dataset(tmp_path: Path) -> None:
    assert run("synth", "--out", str(tmp_path), "--n", "4", "--seed", "1", "--n-noise", "1").exit_code == 0
    result = run("check", "--data", str(tmp_path / "dataset.csv"), "--noise", str(tmp_path / "noise.csv"))
    assert result.exit_code == 0, result.output
    assert "dataset fingerprint: " in result.output
    assert "noise CSV" in result.output and "1 clips, all present" in result.output
    assert "Bad files" not in result.output


def test_check_lists_unreadable_empty_and_silent_files_and_fails(tmp_path: Path) -> None:
    sf.write(tmp_path / "good.wav", np.full(4800, 0.1), 48_000, subtype="PCM_16")
    (tmp_path / "garbage.wav").write_bytes(b"RIFF not really a wave file")
    sf.write(tmp_path / "empty.wav", np.zeros(0), 48_000, subtype="PCM_16")
    sf.write(tmp_path / "silent.wav", np.zeros(4800), 48_000, subtype="PCM_16")
    (tmp_path / "d.csv").write_text("file_path,class\ngood.wav,0\ngarbage.wav,1\nempty.wav,1\nsilent.wav,0\n")
    result = run("check", "--data", str(tmp_path / "d.csv"))
    assert result.exit_code == 1
    assert "Bad files: 3" in result.output
    for reason in ("unreadable", "empty: no samples", "silent: every sample is zero"):
        assert reason in result.output


def test_check_on_a_csv_with_missing_files_prints_the_problems_and_fails(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("file_path,class\nnope.wav,0\nalso_nope.wav,3\n")
    result = run("check", "--data", str(tmp_path / "d.csv"))
    assert result.exit_code == 1
    assert "invalid dataset" in result.output
    assert "line 2: missing file: nope.wav" in result.output
    assert "line 3: unknown label: '3'" in result.output
