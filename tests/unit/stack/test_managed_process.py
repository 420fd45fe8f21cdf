"""ManagedProcess knows exactly whether the child it started is alive, and says how it died."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from spira.stack.process import ManagedProcess


def _sleeper(run_dir: Path) -> ManagedProcess:
    return ManagedProcess("sleeper", ["/bin/sleep", "30"], run_dir, grace_s=2)


def test_a_child_checked_right_after_start_is_never_taken_for_dead(tmp_path: Path) -> None:
    # /proc/<pid>/cmdline can be empty for an instant after Popen returns; immediate checks used to
    # catch that window now and then
    for _ in range(100):
        proc = _sleeper(tmp_path)
        proc.start()
        try:
            assert not proc.exited_early()
            assert proc.alive()
        finally:
            proc.stop()
        assert not proc.alive()


def test_an_early_exit_is_described_by_its_exit_code(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "failing", [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"], tmp_path
    )
    proc.start()
    for _ in range(100):
        if proc.exited_early():
            break

        time.sleep(0.05)
    assert proc.exited_early()
    assert proc.describe_exit() == "exit code 3"
    assert "bad config" in proc.log_tail()


def test_a_process_killed_by_a_signal_is_described_by_the_signal(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "killed", [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"], tmp_path
    )
    proc.start()

    deadline = time.monotonic() + 10
    while not proc.exited_early() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.describe_exit() == "killed by SIGKILL"


def test_stop_ends_the_whole_process_group_and_forgets_the_pid(tmp_path: Path) -> None:
    proc = ManagedProcess("group", ["/bin/sh", "-c", "sleep 30 & sleep 30; wait"], tmp_path, grace_s=2)
    pid = proc.start()
    assert proc.alive()
    assert proc.stop()
    assert not proc.alive()
    assert not proc.pid_path.exists()
    assert (
        not Path(f"/proc/{pid}").exists()
        or "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
    )
