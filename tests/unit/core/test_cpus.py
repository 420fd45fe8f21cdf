"""CPU-bound stages run in one thread per core the process may use: its affinity, bounded by a pod's CPU
limit (cgroup v2 `cpu.max`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spira_core.cpus import quota_cpus, usable_cpus


@pytest.mark.parametrize(
    ("cpu_max", "cores"),
    [
        ("max 100000", None),
        ("100000 100000", 1),
        ("150000 100000", 2),
        ("50000 100000", 1),
        ("400000 100000", 4),
    ],
)
def test_a_cgroup_quota_allows_its_cores_rounded_up_and_none_when_unlimited(cpu_max, cores) -> None:
    assert quota_cpus(cpu_max + "\n") == cores


@pytest.mark.parametrize("cpu_max", ["", "max", "a b", "-1 100000", "100000 0"])
def test_an_unreadable_cgroup_quota_sets_no_bound(cpu_max) -> None:
    assert quota_cpus(cpu_max) is None


def test_the_usable_cores_are_the_affinity_bounded_by_the_quota(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    one_core = tmp_path / "cpu.max"
    one_core.write_text("100000 100000\n")
    assert usable_cpus(one_core) == 1
    many = tmp_path / "many.max"
    many.write_text(f"{(affinity + 8) * 100000} 100000\n")
    assert usable_cpus(many) == affinity  # a quota above the affinity does not add cores
    assert usable_cpus(tmp_path / "absent") == affinity


def test_a_process_pinned_to_one_core_uses_one(tmp_path: Path) -> None:
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert usable_cpus(tmp_path / "absent") == 1
    finally:
        os.sched_setaffinity(0, before)
