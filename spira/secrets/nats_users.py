"""The intake's and the workers' NATS users (infra/queue_auth.py): each workload's password is kept in its
Vault secret, inside the `nats_url` its wiring already reads (`nats://<user>:<password>@…`: nats-py logs in
with the URL's user info), read at run time like its S3 key. The passwords are made by whoever runs the
NATS servers (the Pulumi program's random passwords, the local stack's), which writes them to the operators'
`nats-users` secret, as MLflow's admin is written to `mlflow-admin`; seeding copies each into its workload.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit, urlunsplit

import hvac

from infra.queue_auth import USERS
from spira.secrets.copies import read_versioned, write_if_unchanged


def with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


def user_of(url: str) -> tuple[str, str] | None:
    parts = urlsplit(url)
    if not parts.username or not parts.password:
        return None
    return unquote(parts.username), unquote(parts.password)


def seed_nats_users(env: str, vault: hvac.Client, address: str | None = None) -> dict[str, str]:
    """Copy each NATS workload's password from the servers' `nats-users` secret (written by whoever runs
    the servers: the Pulumi program, the local stack) into the user info of its `nats_url`, and with
    `address` (a cluster's declared URL, `tls://…`) put that scheme, host and port in it too: a secret
    seeded before the servers spoke TLS moves to `tls://` at the next seed. Returns
    service -> 'created' | 'kept' | 'no secret' | 'no NATS users yet' | 'retry' (check-and-set lost)."""
    try:
        servers = read_versioned(vault, env, "nats-users")[0]
    except hvac.exceptions.InvalidPath:
        return {service: "no NATS users yet" for service in USERS}
    outcome: dict[str, str] = {}
    for service in USERS:
        try:
            data, version = read_versioned(vault, env, service)
        except hvac.exceptions.InvalidPath:
            outcome[service] = "no secret"
            continue
        url = with_user(address or data["nats_url"], service, servers[service])
        if data.get("nats_url") == url:
            outcome[service] = "kept"
            continue
        written = write_if_unchanged(vault, env, service, {**data, "nats_url": url}, version)
        outcome[service] = "created" if written else "retry"
    return outcome
