"""Seeding the candidate step's GitHub credential: the repository and token the Pulumi program wrote to
`candidate-dispatch` are copied into the training secret (what spira/workflow/candidate.py reads), beside
its S3 and MLflow keys, and a changed token reaches it at the next seed."""

from __future__ import annotations

from infra.vault import layout
from spira.secrets.dispatch import seed_dispatch
from spira.secrets.seed import EnvironmentEndpoints, seed
from tests.fakes.secrets import FakeObjectStoreAdmin, HvacKvOver, InMemorySecretStore

ENV = "staging"
CREDENTIAL = {"github_repository": "spira-platform/spira-platform", "github_dispatch_token": "ghp_one"}


def _seeded() -> tuple[InMemorySecretStore, HvacKvOver]:
    store = InMemorySecretStore()
    vault = HvacKvOver(store)
    seed(ENV, vault, FakeObjectStoreAdmin(), EnvironmentEndpoints("https://s3:8333", "http://mlflow:5000"))
    return store, vault


def _training(store: InMemorySecretStore) -> dict:
    return store.read(layout.secret_path(ENV, "training")).data


def test_the_training_secret_gets_the_dispatch_credential_beside_its_keys_and_a_rerun_keeps_it() -> None:
    store, vault = _seeded()
    before = _training(store)
    vault.create_or_update_secret(
        layout.secret_path(ENV, "candidate-dispatch"), dict(CREDENTIAL), 0, "secret"
    )
    assert seed_dispatch(ENV, vault) == "created"
    assert _training(store) == {**before, **CREDENTIAL}  # nothing else changed
    assert set(CREDENTIAL) == set(layout.DISPATCH_KEYS) <= set(layout.SERVICES["training"].keys)
    assert seed_dispatch(ENV, vault) == "kept"
    # the operator rotates the token in the stack's config; `pulumi up` writes it; the next seed copies it
    vault.create_or_update_secret(
        layout.secret_path(ENV, "candidate-dispatch"),
        {**CREDENTIAL, "github_dispatch_token": "ghp_two"},
        1,
        "secret",
    )
    assert seed_dispatch(ENV, vault) == "updated"
    assert _training(store)["github_dispatch_token"] == "ghp_two"
    # only the training secret holds it: no other workload can dispatch
    for service in ("serving", "gate", "mlflow"):
        data = store.read(layout.secret_path(ENV, service)).data
        assert not set(data) & set(layout.DISPATCH_KEYS), service


def test_nothing_is_copied_before_pulumi_wrote_a_complete_credential_or_before_training_is_seeded() -> None:
    store, vault = _seeded()
    assert seed_dispatch(ENV, vault) == "no dispatch credential yet"
    vault.create_or_update_secret(
        layout.secret_path(ENV, "candidate-dispatch"),
        {**CREDENTIAL, "github_dispatch_token": ""},
        0,
        "secret",
    )
    assert seed_dispatch(ENV, vault) == "no dispatch credential yet"
    assert not set(_training(store)) & set(layout.DISPATCH_KEYS)
    empty = HvacKvOver(InMemorySecretStore())
    empty.create_or_update_secret(
        layout.secret_path(ENV, "candidate-dispatch"), dict(CREDENTIAL), 0, "secret"
    )
    assert seed_dispatch(ENV, empty) == "no secret"
