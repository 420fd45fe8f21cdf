"""Secret paths, policies and JWT roles for every environment and service.

The one description both the Pulumi program and the local bootstrap read: change it here and both follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from string import Template

from infra.environments import declared

KV_MOUNT = "secret"
KV_MAX_VERSIONS = 10
JWT_MOUNT = "jwt"
AUDIENCE = "vault"
NAMESPACE = declared().workload_namespace
# Short-lived tokens: a leaked token is useless within minutes, and workloads log in again on expiry.
TOKEN_TTL_S = 15 * 60
TOKEN_MAX_TTL_S = 60 * 60
AUDIT_LOG_FILE = "audit.log"

ENVIRONMENTS: tuple[str, ...] = declared().names


@dataclass(frozen=True)
class Service:
    name: str
    service_account: str
    keys: tuple[str, ...]
    workload: bool = True  # False: no role logs in as it (operator-only secrets)

    @property
    def subject(self) -> str:
        """The `sub` claim of the service account's token (Kubernetes and the local signer alike)."""
        return f"system:serviceaccount:{NAMESPACE}:{self.service_account}"


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service(
            "serving", "spira-serving", ("s3_endpoint", "s3_access_key", "s3_secret_key", "archive_bucket")
        ),
        Service(
            "training",
            "spira-training",
            ("s3_endpoint", "s3_access_key", "s3_secret_key", "features_bucket", "mlflow_tracking_uri"),
        ),
        Service(
            "mlflow", "spira-mlflow", ("s3_endpoint", "s3_access_key", "s3_secret_key", "artifacts_bucket")
        ),
        # Object-store admin credentials, used only by operators to mint and revoke service keys.
        Service("objectstore", "-", ("admin_access_key", "admin_secret_key", "endpoint"), workload=False),
    )
}


def _check(env: str, service: str | None = None) -> None:
    if env not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {env!r}; expected one of {', '.join(ENVIRONMENTS)}")
    if service is not None and service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")


def secret_path(env: str, service: str) -> str:
    """Path of a service's secret inside the KV v2 mount (`secret/spira/<env>/<service>`)."""
    _check(env, service)
    return f"spira/{env}/{service}"


def policy_name(env: str, service: str) -> str:
    _check(env, service)
    return f"spira-{env}-{service}"


def operator_policy_name(env: str) -> str:
    _check(env)
    return f"spira-{env}-operator"


def role_name(env: str, service: str) -> str:
    _check(env, service)
    return f"spira-{env}-{service}"


def _template(name: str) -> Template:
    return Template(resources.files("infra.vault").joinpath("policies", name).read_text())


def service_policy(env: str, service: str) -> str:
    """HCL of the policy that lets a service read only its own secret."""
    _check(env, service)
    return _template("service.hcl").substitute(env=env, service=service, kv_mount=KV_MOUNT)


def operator_policy(env: str) -> str:
    _check(env)
    return _template("operator.hcl").substitute(env=env, kv_mount=KV_MOUNT)


def policies(env: str) -> dict[str, str]:
    """Every policy of an environment, name -> HCL."""
    out = {policy_name(env, s.name): service_policy(env, s.name) for s in SERVICES.values() if s.workload}
    out[operator_policy_name(env)] = operator_policy(env)
    return out


def jwt_role(env: str, service: str) -> dict[str, object]:
    """Parameters of the JWT auth role for a workload (the names the Vault API uses)."""
    _check(env, service)
    svc = SERVICES[service]
    if not svc.workload:
        raise ValueError(f"{service!r} is not a workload and has no role")
    return {
        "role_type": "jwt",
        "bound_audiences": [AUDIENCE],
        "user_claim": "sub",
        "bound_subject": svc.subject,
        "token_policies": [policy_name(env, service)],
        "token_ttl": TOKEN_TTL_S,
        "token_max_ttl": TOKEN_MAX_TTL_S,
    }


def roles(env: str) -> dict[str, dict[str, object]]:
    return {role_name(env, s.name): jwt_role(env, s.name) for s in SERVICES.values() if s.workload}


def operator_role_name(env: str) -> str:
    _check(env)
    return f"spira-{env}-operator"


def operator_subject(env: str) -> str:
    """Subject of an operator's JWT (in clusters an OIDC user; locally minted by the stack's signer)."""
    _check(env)
    return f"operator:{env}"


def operator_roles(env: str) -> dict[str, dict[str, object]]:
    return {
        operator_role_name(env): {
            "role_type": "jwt",
            "bound_audiences": [AUDIENCE],
            "user_claim": "sub",
            "bound_subject": operator_subject(env),
            "token_policies": [operator_policy_name(env)],
            "token_ttl": TOKEN_TTL_S,
            "token_max_ttl": TOKEN_MAX_TTL_S,
        }
    }


# -- rotation ------------------------------------------------------------------------------------------
# Where a rotation in progress is journaled: beside the environment's secrets, so the operator policy
# (spira/<env>/*) covers it and no workload policy does.
ROTATIONS_DIR = "_rotations"


def rotation_journal_path(env: str, service: str) -> str:
    """Path (inside the KV mount) of the rotation journal of a service's secret."""
    _check(env, service)
    return f"spira/{env}/{ROTATIONS_DIR}/{service}"


def secret_ref(env: str, service: str) -> str:
    """`<mount>/<path>`: the form workloads get in VAULT_SECRET_PATH and label their version gauge with."""
    return f"{KV_MOUNT}/{secret_path(env, service)}"
