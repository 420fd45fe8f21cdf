"""The clients of /predict and the credential each presents: a JWT that Vault's identity OIDC provider signs.

A client logs in to Vault with its own role (`spira-<env>-predict-<kind>`) and reads
`identity/oidc/token/<the same name>`: a short-lived JWT (audience PREDICT_AUDIENCE, claim `spira_client`
= its kind) signed by the environment's key `spira-<env>-predict`. Serving checks it against the public
keys Vault publishes at /v1/identity/oidc/.well-known/keys (spira_core/client_auth.py), before reading
the body.

- gate, intake: in-cluster workloads, log in with their service-account token (auth/jwt, as every workload);
- hospital: apps outside the clusters, log in with AppRole (auth/approle): an operator issues each hospital
  its own secret ID (docs/runbooks/vault.md, "Issuing a hospital credential").

Declared once here; the Pulumi program (infra/components/vault.py) and the local stack's bootstrap
(spira/stack/vault.py) both apply it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from infra.vault import layout

# The `aud` of every client credential; spira_core/client_auth.py states the same value (a unit test holds
# them equal: spira_core imports no infra).
PREDICT_AUDIENCE = "spira-predict"
CLIENT_CLAIM = "spira_client"
APPROLE_MOUNT = "approle"
# A credential lives 15 minutes; clients fetch a new one before it expires (spira_core/predict_credential.py).
PREDICT_TOKEN_TTL_S = 15 * 60
# The signing key rotates daily; a retired public key stays published for a day, far longer than a token.
PREDICT_KEY_ROTATION_S = 24 * 3600
PREDICT_KEY_VERIFICATION_TTL_S = 24 * 3600
# A hospital's secret ID: renewed by issuing a new one (the runbook) before 90 days.
HOSPITAL_SECRET_ID_TTL_S = 90 * 24 * 3600


@dataclass(frozen=True)
class Client:
    kind: str
    service_account: str | None  # an in-cluster workload's account; None: outside the clusters (AppRole)

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{layout.NAMESPACE}:{self.service_account}"


CLIENTS: dict[str, Client] = {
    c.kind: c
    for c in (
        Client("hospital", None),
        Client("gate", "spira-gate"),
        Client("intake", "spira-intake"),
    )
}


def _check(env: str, kind: str | None = None) -> None:
    if env not in layout.ENVIRONMENTS:
        raise ValueError(f"unknown environment {env!r}; expected one of {', '.join(layout.ENVIRONMENTS)}")
    if kind is not None and kind not in CLIENTS:
        raise ValueError(f"unknown client {kind!r}; expected one of {', '.join(CLIENTS)}")


def role_name(env: str, kind: str) -> str:
    """The client's login role, its OIDC token role and its policy: one name for all three."""
    _check(env, kind)
    return f"spira-{env}-predict-{kind}"


def key_name(env: str) -> str:
    _check(env)
    return f"spira-{env}-predict"


def key(env: str) -> dict[str, object]:
    """`identity/oidc/key/<key_name>`: who may be issued tokens with it, and its rotation."""
    _check(env)
    return {
        "algorithm": "RS256",
        "allowed_client_ids": [PREDICT_AUDIENCE],
        "rotation_period": PREDICT_KEY_ROTATION_S,
        "verification_ttl": PREDICT_KEY_VERIFICATION_TTL_S,
    }


def token_roles(env: str) -> dict[str, dict[str, object]]:
    """`identity/oidc/role/<role_name>`: one per client kind, all on the environment's key."""
    return {
        role_name(env, kind): {
            "key": key_name(env),
            "client_id": PREDICT_AUDIENCE,
            "ttl": PREDICT_TOKEN_TTL_S,
            "template": json.dumps({CLIENT_CLAIM: kind}),
        }
        for kind in CLIENTS
    }


def policy(env: str, kind: str) -> str:
    """HCL: read this client's identity token, nothing else."""
    return f'# {kind} client of /predict in {env}: its identity token and nothing else.\npath "identity/oidc/token/{role_name(env, kind)}" {{\n  capabilities = ["read"]\n}}\n'


def policies(env: str) -> dict[str, str]:
    return {role_name(env, kind): policy(env, kind) for kind in CLIENTS}


def jwt_roles(env: str) -> dict[str, dict[str, object]]:
    """`auth/jwt/role/<role_name>` of the in-cluster clients: their service-account token logs in."""
    out = {}
    for kind, client in CLIENTS.items():
        if client.service_account is None:
            continue
        out[role_name(env, kind)] = {
            "role_type": "jwt",
            "bound_audiences": [layout.AUDIENCE],
            "user_claim": "sub",
            "bound_subject": client.subject,
            "token_policies": [role_name(env, kind)],
            "token_ttl": layout.TOKEN_TTL_S,
            "token_max_ttl": layout.TOKEN_MAX_TTL_S,
        }
    return out


def approle_roles(env: str) -> dict[str, dict[str, object]]:
    """`auth/approle/role/<role_name>` of the clients outside the clusters: a secret ID per hospital."""
    return {
        role_name(env, kind): {
            "token_policies": [role_name(env, kind)],
            "token_ttl": layout.TOKEN_TTL_S,
            "token_max_ttl": layout.TOKEN_MAX_TTL_S,
            "secret_id_ttl": HOSPITAL_SECRET_ID_TTL_S,
        }
        for kind, client in CLIENTS.items()
        if client.service_account is None
    }
