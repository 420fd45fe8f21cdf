"""A private local stack on free ports in a temp dir: for the test session, the ephemeral image test and the
served benchmark, so none of them touches (or collides with) a developer's running `spira stack up`."""

from __future__ import annotations

import random
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from spira.stack.config import DEFAULT_PORTS, GRPC_OFFSET, StackConfig
from spira.stack.errors import StackError
from spira.stack.info import StackInfo
from spira.stack.stack import LocalStack


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_window() -> tuple[int, int]:
    """Where to draw a service port p so that p, p+1 and p+10000 all lie below the kernel's ephemeral range.

    Outgoing connections and bind(0) take their local ports from that range; a port drawn there can be
    taken between our check and the server's bind (seen: the registry's debug port)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    top = low - GRPC_OFFSET - 2
    return (10000, top) if top - 10000 > 2000 else (20000, 45000)


def free_stack_ports(rng: random.Random | None = None) -> dict[str, int]:
    """Ports for one stack: each with its neighbour (+1) and SeaweedFS's gRPC twin (+10000) free."""
    rng = rng or random.Random()
    lo, hi = _port_window()
    chosen: set[int] = set()
    ports: dict[str, int] = {}
    for name in DEFAULT_PORTS:
        for _ in range(200):
            p = rng.randrange(lo, hi)
            needed = {p, p + 1, p + GRPC_OFFSET}
            if not needed & chosen and all(_free(q) for q in needed):
                ports[name] = p
                chosen |= needed
                break
        else:
            raise RuntimeError("no free ports for a private stack")
    return ports


def private_home() -> Path:
    """A private dir for a stack. Not pytest's tmp_path: pytest prunes old numbered temp dirs, and a
    concurrent pytest run (another worker, a nested run) would delete a live stack's data under it."""
    return Path(tempfile.mkdtemp(prefix="spira-stack-"))


def private_stack(home: Path, with_registry: bool | None = None) -> LocalStack:
    return LocalStack(StackConfig.load(home, **free_stack_ports()), with_registry=with_registry)


@contextmanager
def throwaway_stack(
    with_registry: bool | None = None, say: Callable[[str], None] = lambda _: None
) -> Iterator[tuple[LocalStack, StackInfo]]:
    """Start a private stack, yield it with its info, stop it and delete its data afterwards.

    Free ports are picked before the servers bind them; another process on this machine can take one in
    between, so a failed start is retried once on other ports rather than failing the caller."""
    home = private_home()
    stack = private_stack(home, with_registry)
    try:
        say(f"private stack in {home}")
        try:
            info = stack.up(say=say)
        except StackError:
            stack.down()
            shutil.rmtree(home, ignore_errors=True)
            home = private_home()
            stack = private_stack(home, with_registry)
            info = stack.up(say=say)
        yield stack, info
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
