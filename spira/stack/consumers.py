"""The local stack's registry of running secret consumers: what a cluster's EndpointSlices are to
`spira secrets rotate`, here.

A serving process started for the stack (`start_local_server(..., stack_home=...)`) registers itself as
`run/consumers/<service>/<name>.json` under the stack's home: its name, its pid and its /metrics URL; it
is unregistered when stopped. A registration whose process is gone is dropped when listed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from spira.stack.process import _is_ours


@dataclass(frozen=True)
class Registration:
    service: str
    name: str
    pid: int
    program: str  # argv[0] of the process, so a recycled pid is never taken for it
    metrics_url: str


def registry_dir(home: Path, service: str) -> Path:
    return home / "run" / "consumers" / service


def register(home: Path, reg: Registration) -> Path:
    folder = registry_dir(home, reg.service)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{reg.name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(reg)))
    tmp.replace(path)
    return path


def unregister(home: Path, service: str, name: str) -> None:
    (registry_dir(home, service) / f"{name}.json").unlink(missing_ok=True)


def registered(home: Path, service: str) -> list[Registration]:
    """The live registrations of `service`'s processes (stale ones, whose process is gone, removed)."""
    out = []
    for path in sorted(registry_dir(home, service).glob("*.json")):
        try:
            reg = Registration(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if _is_ours(reg.pid, reg.program):
            out.append(reg)
        elif not Path(f"/proc/{reg.pid}").exists():
            path.unlink(missing_ok=True)  # gone (a live pid running something else: still exec'ing, kept)
    return out
