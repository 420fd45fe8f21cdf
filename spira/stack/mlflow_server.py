"""MLflow tracking server with the model registry: SQLite backend, artifacts proxied to the S3 server.

Clients need only the tracking URI (the server proxies artifacts with --serve-artifacts), so training
never holds the artifact store's keys. The server itself reads its S3 key from its Vault secret.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from spira.stack.config import StackConfig
from spira.stack.errors import StackError
from spira.stack.net import http_status
from spira.stack.process import ManagedProcess

NAME = "mlflow"


def mlflow_binary() -> str:
    candidate = Path(sys.executable).parent / "mlflow"
    found = str(candidate) if candidate.exists() else shutil.which("mlflow")
    if not found:
        raise StackError(
            NAME, "the `mlflow` command is missing", "pip install mlflow==3.17.2 (make venv does)"
        )
    return found


class MlflowService:
    name = NAME

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.dir = cfg.home / "mlflow"
        self.uri = f"http://127.0.0.1:{cfg.mlflow_port}"

    def ports(self) -> list[int]:
        return [self.cfg.mlflow_port]

    def process(self, secret: dict[str, str] | None = None) -> ManagedProcess:
        self.dir.mkdir(parents=True, exist_ok=True)
        # MLflow 3 starts a pool of job-runner processes (~2 GB) for GenAI jobs we never use.
        env: dict[str, str] = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        bucket = "unset"
        if secret is not None:
            bucket = secret["artifacts_bucket"]
            env |= {
                "MLFLOW_S3_ENDPOINT_URL": secret["s3_endpoint"],
                "AWS_ACCESS_KEY_ID": secret["s3_access_key"],
                "AWS_SECRET_ACCESS_KEY": secret["s3_secret_key"],
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        argv = [
            mlflow_binary(),
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.dir / 'mlflow.db'}",
            "--artifacts-destination",
            f"s3://{bucket}",
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.cfg.mlflow_port),
            "--workers",
            "1",
        ]
        return ManagedProcess(NAME, argv, self.cfg.home / "run", env=env, grace_s=10)

    def answering(self) -> bool:
        return http_status(f"{self.uri}/health") is not None

    def healthy(self) -> bool:
        return http_status(f"{self.uri}/health") == 200
