"""Where promotion evidence lives is declared once, and only the training workload reaches it."""

from __future__ import annotations

import pytest

from infra.environments import DeclarationError, declared, parse
from infra.vault.layout import SERVICES


def reaches(grant, bucket: str, prefix: str) -> bool:
    return grant.bucket == bucket and (prefix.startswith(grant.prefix) or grant.prefix.startswith(prefix))


@pytest.mark.parametrize("env", ["local", "staging", "production"])
def test_the_evidence_prefix_is_readable_and_writable_by_training_and_by_no_other_workload(env):
    bucket, prefix = declared().evidence_location(env)
    assert bucket == f"spira-{env}-features" and prefix == "evidence/"
    training = [g for g in declared().object_store_grants(env, "training") if reaches(g, bucket, prefix)]
    assert training and {"GetObject", "PutObject"} <= {a for g in training for a in g.actions}
    others = {
        service
        for service in SERVICES
        if service != "training"
        for g in declared().object_store_grants(env, service)
        if reaches(g, bucket, prefix)
    }
    assert others == set()


def test_an_evidence_location_in_an_undeclared_bucket_is_refused():
    import yaml

    from infra.environments import DECLARATION

    raw = yaml.safe_load(DECLARATION.read_text())
    raw["evidence"] = {"bucket": "evidence_bucket", "prefix": "evidence/"}
    with pytest.raises(DeclarationError, match="not a declared bucket"):
        parse(raw)
