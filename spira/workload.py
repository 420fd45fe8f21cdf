"""One rule for running a workload's command from an operator's shell.

A workload (a pod, a CI job, a training Job) is given exactly VAULT_ADDR, VAULT_ROLE and VAULT_SECRET_PATH.
An operator's shell after `eval "$(spira stack env)"` has VAULT_ADDR and a root VAULT_TOKEN instead. When a
workload command (`spira pipeline`, `spira serve`, `spira bento fetch`) runs without VAULT_ROLE, it acts
as that service of the local stack at $SPIRA_HOME: the service's Vault contract is filled in from the stack
and the root token is dropped, so the command logs in exactly as the workload would. When the shell already
carries a workload contract (VAULT_ROLE and VAULT_SECRET_PATH), nothing is changed.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping


def act_as(service: str, environ: MutableMapping[str, str] | None = None) -> bool:
    """Fill in `service`'s contract from the running local stack; True when it did."""
    env = os.environ if environ is None else environ
    if env.get("VAULT_ROLE") and env.get("VAULT_SECRET_PATH"):
        return False
    try:
        from spira.stack import LocalStack, StackConfig, StackError
    except ModuleNotFoundError:
        return False  # a workload image (the training image) carries no local stack

    cfg = StackConfig.load(env.get("SPIRA_HOME") or None)
    if not (cfg.home / "stack.json").exists():
        return False  # no local stack here: the command says which variables are missing
    try:
        info = LocalStack(cfg).info()
    except StackError:
        return False
    env.update(info.service_env(service))
    env.pop("VAULT_TOKEN", None)  # a workload logs in with its own identity, never the operator's token
    return True
