"""A loopback registry of its own for a CI job or a test session (the stack's registry service, alone).

CI needs only the registry to get real digests; starting OpenBao, SeaweedFS and MLflow for that would cost
a minute for nothing. The ephemeral test starts its own throwaway stack for the container's secrets.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spira.stack.config import StackConfig
from spira.stack.net import free_port, port_in_use, wait_until
from spira.stack.registry import RegistryService


@contextmanager
def loopback_registry(home: Path | None = None) -> Iterator[str]:
    """Yield host:port of a fresh docker-registry on 127.0.0.1; stopped and deleted afterwards."""
    own = home is None
    root = Path(tempfile.mkdtemp(prefix="spira-registry-")) if own else home
    for _ in range(50):  # the registry's debug listener takes port + 1 as well
        port = free_port()
        if port < 65534 and not port_in_use(port + 1):
            break
    service = RegistryService(StackConfig(home=root, registry_port=port))
    service.write_config()
    proc = service.process()
    proc.start()
    try:
        if not wait_until(service.healthy, 20, abort=proc.exited_early):
            raise RuntimeError(f"docker-registry did not answer on {service.address}:\n{proc.log_tail(8)}")
        yield service.address
    finally:
        proc.stop()
        if own:
            shutil.rmtree(root, ignore_errors=True)
