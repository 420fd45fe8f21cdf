"""How many cores this process may keep busy: its CPU affinity (taskset, a pinned benchmark), bounded by
the cgroup v2 CPU quota where one is set (a Kubernetes pod's `resources.limits.cpu` becomes `cpu.max`).

CPU-bound stages (an upload's decode and features, the model's forward pass) run in that many threads:
more threads than cores only take turns on them, and each turn evicts the others' buffers from the cache
(a server with four decode threads and the model's on one core: 10.58 ms of CPU per request against
9.45 with one compute thread, side by side; docs/performance.md)."""

from __future__ import annotations

import math
import os
from pathlib import Path

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def quota_cpus(cpu_max: str) -> int | None:
    """Cores a cgroup v2 `cpu.max` ("QUOTA PERIOD", or "max PERIOD" for none) allows, rounded up."""
    parts = cpu_max.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None


def usable_cpus(cpu_max: Path = CPU_MAX) -> int:
    """The cores of this process's affinity, at most its cgroup's quota (itself at least one)."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota = quota_cpus(cpu_max.read_text())
    except OSError:  # no cgroup v2 controller here (a plain host, cgroup v1)
        quota = None
    return min(cores, quota) if quota else cores
