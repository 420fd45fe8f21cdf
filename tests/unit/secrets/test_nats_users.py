"""Seeding the queue's NATS users: each workload's password, written by whoever runs the NATS servers to
`nats-users`, is copied into the user info of that workload's `nats_url`, and nowhere else."""

from __future__ import annotations

from infra.vault import layout
from spira.secrets.nats_users import seed_nats_users, user_of, with_user
from tests.fakes.secrets import HvacKvOver, InMemorySecretStore

ENV = "local"


def _vault(**secrets: dict) -> HvacKvOver:
    vault = HvacKvOver(InMemorySecretStore())
    for service, data in secrets.items():
        vault.create_or_update_secret(layout.secret_path(ENV, service.replace("_", "-")), data, 0, "secret")
    return vault


def _url(vault: HvacKvOver, service: str) -> str:
    return vault.read_secret_version(layout.secret_path(ENV, service), "secret", True)["data"]["data"][
        "nats_url"
    ]


def test_each_workload_gets_its_own_user_and_password_in_its_nats_url_and_a_rerun_keeps_them() -> None:
    plain = {"nats_url": "nats://nats.nats.svc.cluster.local:4222", "queue": "{}"}
    vault = _vault(intake=dict(plain), worker=dict(plain), nats_users={"intake": "p/i@1", "worker": "p:w 2"})
    assert seed_nats_users(ENV, vault) == {"intake": "created", "worker": "created"}
    assert user_of(_url(vault, "intake")) == ("intake", "p/i@1")
    assert user_of(_url(vault, "worker")) == ("worker", "p:w 2")  # quoted in the URL, exact once read back
    assert _url(vault, "worker").endswith("@nats.nats.svc.cluster.local:4222")
    assert seed_nats_users(ENV, vault) == {"intake": "kept", "worker": "kept"}


def test_before_the_servers_wrote_their_users_nothing_is_seeded() -> None:
    vault = _vault(intake={"nats_url": "nats://127.0.0.1:4222"})
    assert set(seed_nats_users(ENV, vault).values()) == {"no NATS users yet"}
    assert user_of(_url(vault, "intake")) is None


def test_a_changed_server_password_reaches_the_workloads_url() -> None:
    url = with_user("nats://127.0.0.1:4222", "intake", "old")
    vault = _vault(intake={"nats_url": url}, nats_users={"intake": "new", "worker": "w"})
    assert seed_nats_users(ENV, vault)["intake"] == "created"
    assert user_of(_url(vault, "intake")) == ("intake", "new") and _url(vault, "intake").count("@") == 1


def test_a_cluster_secret_seeded_before_nats_spoke_tls_moves_to_the_declared_tls_url() -> None:
    """`spira secrets seed` gives a cluster's workloads the declared Service's URL (tls://): a secret
    written when the servers spoke plain nats:// is rewritten with its user kept, then kept as it is."""
    from infra.environments import declared

    address = declared().service("nats").url
    assert address.startswith("tls://")
    old = with_user("nats://nats.nats.svc.cluster.local:4222", "worker", "w")
    vault = _vault(worker={"nats_url": old, "queue": "{}"}, nats_users={"intake": "i", "worker": "w"})
    assert seed_nats_users(ENV, vault, address)["worker"] == "created"
    assert _url(vault, "worker") == with_user(address, "worker", "w")
    assert seed_nats_users(ENV, vault, address)["worker"] == "kept"
    # the local stack passes no address: its own plain URL stays
    local = with_user("nats://127.0.0.1:14222", "intake", "i")
    vault = _vault(intake={"nats_url": local}, nats_users={"intake": "i", "worker": "w"})
    assert seed_nats_users(ENV, vault)["intake"] == "kept" and _url(vault, "intake") == local
