"""Who the HTTP tests are to the server: a client of /predict with its own Vault role and token.

`use(env)` sets the client's variables (VAULT_ADDR, VAULT_ROLE and how to log in, as
spira_core/predict_credential.py reads them) for the whole session: the suite's stack fixture does it;
a run against a container (ci/ephemeral.py) passes them as JSON in SPIRA_CONTRACT_CLIENT. Without
either, no token is sent (a server with no Vault checks none).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

_credential: Any = None


def use(env: Mapping[str, str] | None) -> None:
    global _credential
    from spira_core.predict_credential import PredictCredential  # standard library only

    _credential = PredictCredential.from_env(dict(env)) if env else None


def auth_headers() -> dict[str, str]:
    if _credential is None and os.environ.get("SPIRA_CONTRACT_CLIENT"):
        use(json.loads(os.environ["SPIRA_CONTRACT_CLIENT"]))
    return _credential.headers() if _credential is not None else {}
