"""`up` is idempotent and rolls back on failure; `down` leaves no process and no listening port."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from spira.stack import LocalStack, StackConfig, StackError
from spira.stack.net import port_in_use
from spira.stack.private import free_stack_ports, private_home

pytestmark = pytest.mark.integration


def _all_ports(stack: LocalStack) -> list[int]:
    return [p for svc in (stack.vault, stack.s3, stack.mlflow, stack.registry) for p in svc.ports()]


def _pids_alive(pids: list[int]) -> list[int]:
    return [
        p
        for p in pids
        if Path(f"/proc/{p}").exists()
        and "Z" not in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
    ]


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A private stack home (see private_home), removed afterwards."""
    home = private_home()
    yield home
    shutil.rmtree(home, ignore_errors=True)


def test_up_twice_reuses_the_running_services_and_down_stops_everything(tmp_path: Path) -> None:
    stack = LocalStack(StackConfig.load(tmp_path / "home", **free_stack_ports()))
    try:
        stack.up()
        first = {s.name: s.pid for s in stack.status()}
        stack.up()
        assert {s.name: s.pid for s in stack.status()} == first
        assert all(s.health == "healthy" for s in stack.status() if s.name in first and s.pid)
    finally:
        stopped = stack.down()
    assert {"openbao", "seaweedfs", "mlflow"} <= set(stopped)
    assert _pids_alive([p for p in first.values() if p]) == []
    assert [p for p in _all_ports(stack) if port_in_use(p)] == []

    # a corrupt keys file is reported clearly instead of a traceback deep in hvac
    (tmp_path / "home" / "vault" / "init.json").write_text("{not json")
    with pytest.raises(StackError) as err:
        stack.up()
    assert err.value.service == "openbao" and "corrupt" in err.value.problem
    assert [p for p in _all_ports(stack) if port_in_use(p)] == []


def test_a_port_in_use_names_the_service_and_rolls_back_what_was_started(tmp_path: Path) -> None:
    ports = free_stack_ports()
    stack = LocalStack(StackConfig.load(tmp_path / "home", **ports))
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", ports["mlflow_port"]))
    blocker.listen(1)
    try:
        with pytest.raises(StackError) as err:
            stack.up()
    finally:
        blocker.close()
        stack.down()
    assert err.value.service == "mlflow"
    assert str(ports["mlflow_port"]) in err.value.problem
    # OpenBao and SeaweedFS were started before the clash and must be gone again
    assert all(s.pid is None for s in stack.status())
    assert not port_in_use(ports["vault_port"]) and not port_in_use(ports["s3_port"])
