"""MLflow tracking server with the model registry: SQLite backend, artifacts proxied to the S3 server.

Clients need only the tracking URI and their MLflow user (the server proxies artifacts with
--serve-artifacts), so training never holds the artifact store's keys. The server itself reads its S3 key
from its Vault secret.

Behind MLflow's `basic-auth` app, as in the clusters (infra/components/mlflow.py): its own SQLite user
database, nothing readable without a permission, an admin whose password is generated at the first `up`
and kept in mlflow/admin.json (0600), like OpenBao's keys in vault/init.json.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from pathlib import Path

from spira.stack.config import StackConfig
from spira.stack.errors import StackError
from spira.stack.net import http_status
from spira.stack.process import ManagedProcess
from spira.stack.service import LocalService

NAME = "mlflow"
ADMIN_USER = "admin"


def mlflow_binary() -> str:
    candidate = Path(sys.executable).parent / "mlflow"
    found = str(candidate) if candidate.exists() else shutil.which("mlflow")
    if not found:
        raise StackError(
            NAME, "the `mlflow` command is missing", "pip install mlflow==3.17.2 (make venv does)"
        )
    return found


class MlflowService(LocalService):
    name, folder = NAME, "mlflow"

    def __init__(self, cfg: StackConfig) -> None:
        super().__init__(cfg)
        self.uri = f"http://127.0.0.1:{cfg.mlflow_port}"
        self.admin_file = self.dir / "admin.json"
        self.auth_config = self.dir / "basic_auth.ini"

    def _write_private(self, path: Path, text: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)

    def write_config(self) -> None:
        """The admin credential (generated once) and the auth app's configuration, both 0600."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if not self.admin_file.is_file():
            admin = {
                "username": ADMIN_USER,
                "password": secrets.token_urlsafe(24),
                # The auth app's forms are CSRF-protected with this key: stable across restarts.
                "flask_secret_key": secrets.token_urlsafe(32),
            }
            self._write_private(self.admin_file, json.dumps(admin))
        admin = self.admin()
        # configparser interpolates %: token_urlsafe has none, the path might.
        self._write_private(
            self.auth_config,
            "[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = sqlite:///{str(self.dir / 'auth.db').replace('%', '%%')}\n"
            f"admin_username = {admin[0]}\n"
            f"admin_password = {admin[1]}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
        )

    def admin(self) -> tuple[str, str]:
        """(username, password) of the server's admin; the stack's operators act as it."""
        data = self._admin_data()
        return data["username"], data["password"]

    def _admin_data(self) -> dict[str, str]:
        try:
            return json.loads(self.admin_file.read_text())
        except (OSError, ValueError) as exc:
            raise StackError(
                NAME, f"its admin credential {self.admin_file} is unreadable ({exc})", "run `spira stack up`"
            ) from exc

    def ports(self) -> list[int]:
        return [self.cfg.mlflow_port]

    def process(self, secret: dict[str, str] | None = None) -> ManagedProcess:
        self.dir.mkdir(parents=True, exist_ok=True)
        # MLflow 3 starts a pool of job-runner processes (~2 GB) for GenAI jobs we never use.
        env: dict[str, str] = {
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_AUTH_CONFIG_PATH": str(self.auth_config),
        }
        if self.admin_file.is_file():  # written by write_config at `up`
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = self._admin_data()["flask_secret_key"]
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
            "--app-name",
            "basic-auth",
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
