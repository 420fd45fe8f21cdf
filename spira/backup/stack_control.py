"""The local stack around the data: its addresses, its health, and MLflow's restart around a restore.

MLflow is the one reader that takes its database and its S3 key (from Vault) only at start: it is stopped
before anything is restored and started again by `spira stack up`'s own path, which reads the restored
secret. OpenBao and SeaweedFS keep running: the snapshot is restored through OpenBao's API and the
identities through SeaweedFS's filer, which its S3 gateway reloads.
"""

from __future__ import annotations

from typing import Any

from spira.backup.manifest import BackupFailed, BackupRefused
from spira.backup.ports import Say, StackControl
from spira.stack import LocalStack, StackConfig
from spira.stack.errors import StackError

DATA_SERVICES = ("openbao", "seaweedfs", "mlflow")


class LocalStackControl(StackControl):
    def __init__(self, cfg: StackConfig) -> None:
        # with_registry=False: the registry holds no data a backup takes, and starting MLflow again must not
        # start a registry the stack was brought up without
        self.stack = LocalStack(cfg, with_registry=False)

    def describe(self) -> dict[str, Any]:
        return {
            "home": str(self.stack.cfg.home),
            "env": "local",
            "vault_addr": self.stack.vault.addr,
            "s3_endpoint": self.stack.s3.endpoint,
            "mlflow_uri": self.stack.mlflow.uri,
        }

    def ensure_running(self) -> None:
        for st in self.stack.status():
            if st.name in DATA_SERVICES and st.health != "healthy":
                raise BackupRefused(
                    f"{st.name} of the stack in {self.stack.cfg.home} is {st.health}: run `spira stack up`"
                )

    def stop_readers(self, say: Say) -> None:
        say("mlflow: stopping (it reads its database and its S3 key at start)")
        self.stack.mlflow.process().stop()

    def start_readers(self, say: Say) -> None:
        say("mlflow: starting on the restored database and key")
        try:
            self.stack.up(say=lambda m: say(f"  {m}"))
        except StackError as exc:
            raise BackupFailed(f"mlflow did not start again: {exc}") from exc
