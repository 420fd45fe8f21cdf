"""The two maintenance workloads get exactly what they need: the Vault snapshot job may add snapshots
under the backups bucket's vault/ and read Vault's raft snapshot, nothing else; the archive purge may list
and delete under the archive's uploads/ (listing conditioned on the prefix) and never read an upload.
Seeding applies every bucket's declared versioning and lifecycle."""

from __future__ import annotations

import json
import re

from infra.environments import declared
from infra.retention import retention
from infra.vault import layout
from spira.secrets.objectstore import bucket_policy
from spira.secrets.seed import EnvironmentEndpoints, seed
from tests.fakes.secrets import FakeObjectStoreAdmin, HvacKvOver, InMemorySecretStore

ENV = "production"


def statements(service: str) -> list[dict]:
    return json.loads(bucket_policy(declared().object_store_grants(ENV, service)))["Statement"]


def test_the_archive_purge_lists_and_deletes_under_uploads_only_and_cannot_read() -> None:
    archive = declared().buckets(ENV)["archive_bucket"]
    assert statements("archive-purge") == [
        {"Effect": "Allow", "Action": ["s3:DeleteObject"], "Resource": [f"arn:aws:s3:::{archive}/uploads/*"]},
        {
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{archive}"],
            "Condition": {"StringLike": {"s3:prefix": ["uploads/*"]}},
        },
    ]


def test_the_vault_snapshot_job_may_only_add_objects_under_the_backups_vault_prefix() -> None:
    backups = declared().buckets(ENV)["backups_bucket"]
    assert statements("vault-backup") == [
        {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": [f"arn:aws:s3:::{backups}/vault/*"]}
    ]


def paths(hcl: str) -> dict[str, str]:
    return dict(re.findall(r'path "([^"]+)" \{\s*capabilities = (\[[^\]]*\])', hcl))


def test_the_vault_snapshot_role_reads_its_secret_and_the_raft_snapshot_and_nothing_else() -> None:
    assert paths(layout.service_policy(ENV, "vault-backup")) == {
        f"secret/data/spira/{ENV}/vault-backup": '["read"]',
        f"secret/metadata/spira/{ENV}/vault-backup": '["read"]',
        "sys/storage/raft/snapshot": '["read"]',
    }
    role = layout.jwt_role(ENV, "vault-backup")
    assert role["bound_subject"] == "system:serviceaccount:spira:spira-vault-backup"
    assert role["token_policies"] == [layout.policy_name(ENV, "vault-backup")]


def test_the_archive_purge_role_reads_only_its_own_secret() -> None:
    assert set(paths(layout.service_policy(ENV, "archive-purge"))) == {
        f"secret/data/spira/{ENV}/archive-purge",
        f"secret/metadata/spira/{ENV}/archive-purge",
    }


def test_seeding_gives_every_bucket_its_declared_versioning_and_lifecycle() -> None:
    store = FakeObjectStoreAdmin()
    seed(
        ENV, HvacKvOver(InMemorySecretStore()), store, EnvironmentEndpoints("http://s3:9000", "http://m:5000")
    )
    assert set(store.lifecycles) == set(declared().buckets(ENV).values())
    assert list(store.lifecycles.values()) == [retention().bucket(ENV, b) for b in store.lifecycles]
