"""Start and stop the exact processes the stack owns, tracked by pid files.

Each service runs in its own session (process group) so `down` can signal everything it spawned and
nothing else; the pid's command line is checked before signalling so a recycled pid is never killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    run_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    grace_s: float = 10.0
    cwd: Path | None = None  # where it runs; the run dir when not given
    exit_status: int | None = None  # set when the process we started is seen to have exited
    # the child we started ourselves: poll() on it is exact, whereas /proc can show an empty command line
    # for a moment right after Popen returns (the kernel lets a vfork parent resume before the new
    # image's arguments are mapped), which once made a healthy registry look dead
    _child: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    @property
    def pid_path(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_path(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        if self._child is not None and self._child.poll() is None:
            return self._child.pid
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _is_ours(pid, self.argv[0]) else None

    def alive(self) -> bool:
        return self.pid() is not None

    def start(self) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.exit_status = None
        env = {**os.environ, **self.env}
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # own process group; survives the CLI; signalled as a group
                cwd=self.cwd or self.run_dir,
            )
        self._child = proc
        self.pid_path.write_text(str(proc.pid))
        return proc.pid

    def exited_early(self) -> bool:
        """True if the process we started is gone (crashed during start-up)."""
        if self._child is not None:
            code = self._child.poll()
            if code is not None:
                self.exit_status = code
            return code is not None
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return True
        with contextlib.suppress(ChildProcessError):
            reaped, status = os.waitpid(pid, os.WNOHANG)  # reap if it is our child
            if reaped == pid:
                self.exit_status = os.waitstatus_to_exitcode(status)
        return not _is_ours(pid, self.argv[0])

    def describe_exit(self) -> str:
        """'exit code 1' or 'killed by SIGKILL' for the error message, when we reaped the process."""
        if self.exit_status is None:
            return "exited"
        if self.exit_status < 0:
            return f"killed by {signal.Signals(-self.exit_status).name}"
        return f"exit code {self.exit_status}"

    def stop(self) -> bool:
        """SIGTERM the group, wait up to the grace period, then SIGKILL. True if something was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline and _group_alive(pid):
            _reap(pid)
            time.sleep(0.1)
        if _group_alive(pid):
            _signal_group(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _group_alive(pid):
                _reap(pid)
                time.sleep(0.05)
        _reap(pid)
        if self._child is not None and self._child.pid == pid:
            self._child.poll()  # let Popen record the exit it may have missed
            self._child = None
        self.pid_path.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def _is_ours(pid: int, program: str) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":  # zombie: already exited
        return False
    cmd = _cmdline(pid)
    return bool(cmd) and any(Path(part).name == Path(program).name for part in cmd[:2])


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _group_alive(pgid: int) -> bool:
    return bool(_group_members(pgid))


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
