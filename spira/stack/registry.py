"""A loopback OCI registry (Debian's docker-registry, distribution 2.8): pushed images get real digests."""

from __future__ import annotations

import shutil

from spira.stack.config import StackConfig
from spira.stack.errors import StackError
from spira.stack.net import http_status
from spira.stack.process import ManagedProcess
from spira.stack.service import LocalService

NAME = "registry"
BINARY = "docker-registry"


def registry_available() -> bool:
    return shutil.which(BINARY) is not None


class RegistryService(LocalService):
    name, folder = NAME, "registry"

    def __init__(self, cfg: StackConfig) -> None:
        super().__init__(cfg)
        self.address = f"127.0.0.1:{cfg.registry_port}"

    def ports(self) -> list[int]:
        return [self.cfg.registry_port, self.cfg.registry_port + 1]

    def write_config(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        (self.dir / "config.yml").write_text(f"""\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {self.dir / "data"}
  delete:
    enabled: true
http:
  addr: {self.address}
  debug:
    addr: 127.0.0.1:{self.cfg.registry_port + 1}
""")

    def process(self) -> ManagedProcess:
        binary = shutil.which(BINARY)
        if binary is None:
            raise StackError(
                NAME, "docker-registry is not installed", "apt-get install docker-registry (make sysdeps)"
            )
        return ManagedProcess(
            NAME, [binary, "serve", str(self.dir / "config.yml")], self.cfg.home / "run", grace_s=5
        )

    def answering(self) -> bool:
        return http_status(f"http://{self.address}/v2/") is not None

    def healthy(self) -> bool:
        return http_status(f"http://{self.address}/v2/") == 200
