"""Clients of /predict on the local stack: the variables they get, as a cluster gives them (VAULT_ADDR,
VAULT_ROLE and a way to log in), and their credential (spira_core/predict_credential.py).

- gate, intake: the stack's signer mints their service-account token (the local stand-in for the
  projected token), exactly as for the workloads (StackInfo.service_env);
- hospital: an AppRole secret ID, issued by the operator (`issue_hospital_secret_id`, what
  docs/runbooks/vault.md does with `bao write`), in a 0600 file the app reads. The hospital clients of
  the local stack (`spira submit`, the demo, the queue benchmark) get one issued per run (`hospital_env`).
"""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from pathlib import Path

from infra.vault import clients
from spira.stack.info import StackInfo
from spira_core.predict_credential import PredictCredential


def client_env(info: StackInfo, kind: str) -> dict[str, str]:
    """The variables of an in-cluster client (gate, intake) on the local stack."""
    client = clients.CLIENTS[kind]
    if client.service_account is None:
        raise ValueError(f"{kind!r} logs in with AppRole: use hospital_env")
    return {
        "VAULT_ADDR": info.vault_addr,
        "VAULT_ROLE": clients.role_name(info.env_name, kind),
        "VAULT_JWT_SIGNER_KEY": str(info.signer.private_key_path),
        "VAULT_JWT_SUBJECT": client.subject,
    }


def issue_hospital_secret_id(info: StackInfo, hospital: str, out: Path) -> dict[str, str]:
    """As the operator: a new secret ID for `hospital` (its name kept as the secret ID's metadata, in the
    audit log with every login), written to `out` (0600) with the Vault CA beside it; the app's variables."""
    operator = info.operator_client()
    role = clients.role_name(info.env_name, "hospital")
    role_id = operator.adapter.get(f"/v1/auth/{clients.APPROLE_MOUNT}/role/{role}/role-id")["data"]["role_id"]
    secret = operator.adapter.post(
        f"/v1/auth/{clients.APPROLE_MOUNT}/role/{role}/secret-id",
        json={"metadata": json.dumps({"hospital": hospital})},
    )["data"]["secret_id"]
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret)
    (out.parent / "ca.crt").write_bytes(info.vault_ca.read_bytes())
    return {
        "VAULT_ADDR": info.vault_addr,
        "VAULT_ROLE": role,
        "VAULT_APPROLE_ROLE_ID": role_id,
        "VAULT_APPROLE_SECRET_ID_PATH": str(out),
    }


LOCAL_HOSPITAL = "local-hospital"


def hospital_env(info: StackInfo, hospital: str = LOCAL_HOSPITAL) -> dict[str, str]:
    """A hospital app's variables on the local stack: a secret ID issued now (as the operator does) into
    the stack's home (`clients/<hospital>/secret-id`, 0600, Vault's CA beside it)."""
    return issue_hospital_secret_id(info, hospital, info.home / "clients" / hospital / "secret-id")


def credential(info: StackInfo, kind: str = "gate") -> PredictCredential:
    """A client's credential on the local stack (tests, benchmarks, the demo); a hospital's is issued now."""
    if clients.CLIENTS[kind].service_account is None:
        return PredictCredential.from_env(hospital_env(info))
    return PredictCredential.from_env(client_env(info, kind))


def act_as_client(kind: str, environ: MutableMapping[str, str] | None = None) -> bool:
    """Like spira.workload.act_as, for a client of /predict run from an operator's shell: without
    VAULT_ROLE, fill in the client's variables from the local stack at $SPIRA_HOME (True when it did)."""
    env = os.environ if environ is None else environ
    if env.get("VAULT_ROLE"):
        return False
    from spira.stack import LocalStack, StackConfig, StackError

    cfg = StackConfig.load(env.get("SPIRA_HOME") or None)
    if not (cfg.home / "stack.json").exists():
        return False
    try:
        info = LocalStack(cfg).info()
    except StackError:
        return False
    env.update(
        hospital_env(info) if clients.CLIENTS[kind].service_account is None else client_env(info, kind)
    )
    env.pop("VAULT_TOKEN", None)  # a client logs in with its own identity, never the operator's token
    return True
