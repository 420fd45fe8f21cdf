"""The served model trusts exactly the CA beside its login credential: without it the server starts, is
not ready, and says in one log line where the CA should be."""

from __future__ import annotations

import shutil
import time

import pytest

from spira.stack import StackInfo
from spira_core.vault.settings import vault_ca_path
from tests.contract.test_http_contract import _get
from tests.fixtures import model as fixture

pytestmark = pytest.mark.integration


def test_a_server_without_the_vault_ca_is_not_ready_and_logs_the_ca_path_once(
    local_stack: StackInfo, registered_model: fixture.RegisteredModel, served_model: fixture.ServedModel
) -> None:
    home = fixture.second_server_home(served_model)
    key = home / "credential" / "signing-key.pem"  # the signer key alone, no ca.crt beside it
    key.parent.mkdir()
    shutil.copy(local_stack.signer.private_key_path, key)
    served = fixture.start_server(
        local_stack,
        registered_model,
        home,
        extra_env={"VAULT_JWT_SIGNER_KEY": str(key), "VAULT_SECRET_TTL_S": "1"},
        wait_path="/livez",
    )
    try:
        time.sleep(3)  # a few refresh attempts (every 0.5 s, backed off)
        assert _get(f"{served.url}/livez")[0] == 200
        assert _get(f"{served.url}/readyz")[0] == 503
        secret = fixture.get_json(f"{served.url}/info")["readiness"]["secret"]
        line = f"the Vault CA {vault_ca_path(key)} does not exist"
        assert secret["version"] is None and line in secret["last_error"]
        logged = [entry for entry in served.log.read_text().splitlines() if line in entry]
        assert len(logged) == 1, logged
    finally:
        fixture.stop_server(served)
        shutil.rmtree(home, ignore_errors=True)
