"""The one wiring function: the local stack's real adapters behind the backup's ports."""

from __future__ import annotations

from pathlib import Path

from spira.backup.drill import BackupParts
from spira.backup.mlflow_db import SqliteMlflowDatabase
from spira.backup.objectstore import SeaweedObjectStoreCopy
from spira.backup.stack_control import LocalStackControl
from spira.backup.vault import OpenBaoSnapshots
from spira.stack import StackConfig
from spira.stack.mlflow_server import MlflowService
from spira.stack.seaweed import SeaweedService
from spira.stack.signer import LocalJwtSigner
from spira.stack.vault import OpenBaoService


def local_backup(home: Path | None = None) -> BackupParts:
    """Adapters for the stack in `home` ($SPIRA_HOME or .spira); nothing is contacted until used."""
    cfg = StackConfig.load(home)
    mlflow = MlflowService(cfg)
    return BackupParts(
        vault=OpenBaoSnapshots(OpenBaoService(cfg), LocalJwtSigner(cfg.home / "jwt"), env="local"),
        objectstore=SeaweedObjectStoreCopy(SeaweedService(cfg), f"http://127.0.0.1:{cfg.filer_port}"),
        mlflow=SqliteMlflowDatabase(mlflow.dir / "mlflow.db", mlflow.dir / "auth.db", mlflow.admin_file),
        stack=LocalStackControl(cfg),
    )
