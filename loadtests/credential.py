"""The gate's credential for /predict: `Authorization: Bearer <token>` from Vault's identity provider.

The gate is a client of the model like a hospital app: with VAULT_ADDR and VAULT_ROLE (its role,
`spira-<env>-predict-gate`; in a cluster it logs in with its projected service-account token) it presents
a token on every upload, the probe's and Locust's alike. The one implementation is
spira_core/predict_credential.py (standard library only), the one file of the application the loadtest
image carries. Without VAULT_ADDR (a candidate served with no Vault, the gate's fake server in tests) it
presents none.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

_lock = threading.Lock()
_credential: Any = None


class CredentialUnavailable(RuntimeError):
    pass


def configured(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get("VAULT_ADDR") and env.get("VAULT_ROLE"))


def auth_headers() -> dict[str, str]:
    """The header to send with an upload; {} when the gate has no Vault role. Cached, renewed before expiry."""
    global _credential
    if not configured():
        return {}
    try:
        from spira_core.predict_credential import CredentialError, PredictCredential
    except ImportError as exc:  # an image built without it (loadtests/Containerfile copies it)
        raise CredentialUnavailable(f"the gate has VAULT_ROLE but no credential module: {exc}") from exc

    try:
        with _lock:
            if _credential is None:
                _credential = PredictCredential.from_env()
        return _credential.headers()
    except CredentialError as exc:
        raise CredentialUnavailable(f"the gate's credential for /predict: {exc}") from exc
