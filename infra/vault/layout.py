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
# Operators log in to a cluster's Vault through the organisation's identity provider (OIDC); locally the
# stack's signer mints their JWT instead. Same role names, same policies, same token lifetimes.
OIDC_MOUNT = "oidc"
OIDC_GROUPS_CLAIM = "groups"
# The `vault login -method=oidc` listener on the operator's machine (Vault's CLI default).
OIDC_CLI_REDIRECT_URI = "http://localhost:8250/oidc/callback"
OIDC_SCOPES = ("openid", "profile", "email")
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
    # A policy file (infra/vault/policies/) granting what the workload needs beyond its own secret.
    extra_policy: str | None = None

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
            (
                "s3_endpoint",
                "s3_access_key",
                "s3_secret_key",
                "features_bucket",
                "mlflow_tracking_uri",
                "mlflow_username",
                "mlflow_password",
                # the workflow's candidate step (spira/workflow/candidate.py): GitHub's repository_dispatch,
                # copied by `spira secrets seed` from `candidate-dispatch` (spira/secrets/dispatch.py)
                "github_repository",
                "github_dispatch_token",
            ),
        ),
        Service(
            "mlflow", "spira-mlflow", ("s3_endpoint", "s3_access_key", "s3_secret_key", "artifacts_bucket")
        ),
        # The burst path (docs/queue.md): the intake API stores uploads and publishes jobs, the workers
        # (the model image) read them and write results; both reach NATS at nats_url, and `queue` holds the
        # declaration's queue settings for the environment (JSON), so neither image reads infra/.
        Service(
            "intake",
            "spira-intake",
            ("s3_endpoint", "s3_access_key", "s3_secret_key", "archive_bucket", "nats_url", "queue"),
        ),
        Service(
            "worker",
            "spira-worker",
            ("s3_endpoint", "s3_access_key", "s3_secret_key", "archive_bucket", "nats_url", "queue"),
        ),
        # Backups and retention (docs/runbooks/backup.md): the CronJob that takes Vault's raft snapshots
        # (its policy adds only `sys/storage/raft/snapshot` read) and stores them under the backups bucket's
        # vault/; the CronJob that deletes patients' uploads older than their retention period.
        Service(
            "vault-backup",
            "spira-vault-backup",
            ("s3_endpoint", "s3_access_key", "s3_secret_key", "backups_bucket"),
            extra_policy="raft-snapshot.hcl",
        ),
        Service(
            "archive-purge",
            "spira-archive-purge",
            ("s3_endpoint", "s3_access_key", "s3_secret_key", "archive_bucket"),
        ),
        # The clinical gate's Job (docs/gate.md) reads the frozen holdout from the features bucket (its grant:
        # GetObject under holdout/ only). Its service account is the load gate's, whose client role for
        # /predict is infra/vault/clients.py's: this role reads only this secret.
        Service("gate", "spira-gate", ("s3_endpoint", "s3_access_key", "s3_secret_key", "features_bucket")),
        # Object-store admin credentials, used only by operators to mint and revoke service keys.
        Service("objectstore", "-", ("admin_access_key", "admin_secret_key", "endpoint"), workload=False),
        # MLflow's admin (its basic-auth app), used only by operators to create the workloads' MLflow users.
        Service("mlflow-admin", "-", ("username", "password"), workload=False),
        # The NATS servers' copy of the intake's and workers' passwords (infra/queue_auth.py), written by the
        # program that runs the servers (Pulumi, the local stack); seeding copies each into its workload's nats_url.
        Service("nats-users", "-", ("intake", "worker"), workload=False),
        # The candidate step's GitHub credential (the owner/name of the repository and a token that may send it a
        # repository_dispatch), written by the Pulumi program from the stack's secret config
        # (candidateDispatchToken); seeding copies it into the training secret (spira/secrets/dispatch.py).
        Service("candidate-dispatch", "-", ("github_repository", "github_dispatch_token"), workload=False),
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
    """HCL of the policy that lets a service read only its own secret (and what its extra policy adds)."""
    _check(env, service)
    hcl = _template("service.hcl").substitute(env=env, service=service, kv_mount=KV_MOUNT)
    extra = SERVICES[service].extra_policy
    if extra:
        hcl += "\n" + _template(extra).substitute(env=env, service=service, kv_mount=KV_MOUNT)
    return hcl


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
    """The operator's role on the local stack: a JWT the stack's signer mints (`auth/jwt`)."""
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


def pulumi_policy_name(env: str) -> str:
    _check(env)
    return f"spira-{env}-pulumi"


def pulumi_policy(env: str) -> str:
    """What `pulumi up` changes in Vault after the first configuration: the auth methods, mounts, policies,
    roles, audit device and object-store secret of this environment, nothing else."""
    _check(env)
    return _template("pulumi.hcl").substitute(
        env=env, kv_mount=KV_MOUNT, jwt_mount=JWT_MOUNT, oidc_mount=OIDC_MOUNT
    )


def operator_group(env: str) -> str:
    """The identity provider's group whose members operate an environment's secrets."""
    _check(env)
    return f"spira-{env}-operators"


def platform_group(env: str) -> str:
    """The identity provider's group whose members may run `pulumi up` against an environment's Vault."""
    _check(env)
    return f"spira-{env}-platform"


def cluster_policies(env: str) -> dict[str, str]:
    """Policies only a cluster's Vault has (the local stack is configured by `spira stack up` as root)."""
    return {pulumi_policy_name(env): pulumi_policy(env)}


def oidc_roles(env: str) -> dict[str, dict[str, object]]:
    """The operators' roles in a cluster (`auth/oidc`): the operator role under the same name, policy and
    token lifetimes as the local JWT role, bound to the identity provider's group instead of a subject;
    and the role `pulumi up` runs with."""
    _check(env)
    local = operator_roles(env)[operator_role_name(env)]

    def role(group: str, policy: str) -> dict[str, object]:
        return {
            "role_type": "oidc",
            "user_claim": "sub",
            "groups_claim": OIDC_GROUPS_CLAIM,
            "bound_claims": {OIDC_GROUPS_CLAIM: group},
            "allowed_redirect_uris": [OIDC_CLI_REDIRECT_URI],
            "oidc_scopes": list(OIDC_SCOPES),
            "token_policies": [policy],
            "token_ttl": local["token_ttl"],
            "token_max_ttl": local["token_max_ttl"],
        }

    return {
        operator_role_name(env): role(operator_group(env), operator_policy_name(env)),
        pulumi_policy_name(env): role(platform_group(env), pulumi_policy_name(env)),
    }


# The keys of a workload's secret that hold its MLflow identity (created by `spira secrets seed`).
MLFLOW_USER_KEYS = ("mlflow_username", "mlflow_password")
# The keys of the training secret copied from `candidate-dispatch` (spira/secrets/dispatch.py).
DISPATCH_KEYS = SERVICES["candidate-dispatch"].keys


def mlflow_workloads() -> tuple[str, ...]:
    """The workloads that talk to MLflow, each with its own MLflow user."""
    return tuple(s.name for s in SERVICES.values() if s.workload and "mlflow_username" in s.keys)


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
