"""The local stack behind the Fleet port: its registered serving processes (spira.stack.consumers) and
its service control (MLflow is restarted in place by the stack, which reads its secret again)."""

from __future__ import annotations

from datetime import UTC, datetime

import requests

from spira.secrets.fleet import READY, Fleet, FleetError, Instance, RestartState
from spira.secrets.seed import read_secret
from spira.stack.consumers import registered
from spira.stack.net import wait_until

RESTART_TIMEOUT_S = 120


class LocalFleet(Fleet):
    restart_interrupts = True  # one MLflow process on one port: down while it restarts

    def __init__(self, stack, vault_client) -> None:  # a spira.stack.LocalStack; the operator's client
        self.stack = stack
        self.vault = vault_client

    def instances(self, service: str) -> list[Instance]:
        if service == "mlflow":
            pid = self.stack.mlflow.process().pid()
            return [] if pid is None else [Instance(f"mlflow pid {pid}", READY, self.stack.mlflow.uri)]
        return [
            Instance(f"{r.name} pid {r.pid}", READY, r.metrics_url)
            for r in registered(self.stack.cfg.home, service)
        ]

    def metrics(self, service: str, instance: Instance) -> str:
        try:
            resp = requests.get(instance.address, timeout=5)
            resp.raise_for_status()
        except requests.RequestException as exc:
            raise FleetError(f"{instance.name}: {exc.__class__.__name__}") from exc
        return resp.text

    def _started_at(self, service: str) -> datetime | None:
        proc = self.stack.mlflow.process()
        if service != "mlflow" or proc.pid() is None:
            return None
        return datetime.fromtimestamp(proc.pid_path.stat().st_mtime, UTC)  # written when it started

    def restart(self, service: str) -> None:
        """Stop MLflow, start it with its secret as Vault holds it now, wait until it is healthy."""
        if service != "mlflow":
            raise FleetError(f"the local stack does not restart {service!r}")
        mlflow = self.stack.mlflow
        secret = read_secret(self.vault, "local", "mlflow")
        mlflow.process().stop()
        proc = mlflow.process(secret)
        proc.start()
        if not wait_until(mlflow.healthy, RESTART_TIMEOUT_S, abort=proc.exited_early):
            raise FleetError(
                f"mlflow did not come back within {RESTART_TIMEOUT_S}s after its restart "
                f"({proc.describe_exit() if proc.exited_early() else 'still starting'}): "
                f"{proc.log_tail(5)}; `spira stack up` starts it again"
            )

    def restart_state(self, service: str, since: datetime) -> RestartState:
        started = self._started_at(service)
        if started is None:
            return RestartState(False, False, f"{service} is not running")
        healthy = self.stack.mlflow.healthy()
        seen = f"{service} started {started.isoformat(timespec='seconds')}, {'healthy' if healthy else 'not healthy'}"
        return RestartState(started >= since, started >= since and healthy, seen)
