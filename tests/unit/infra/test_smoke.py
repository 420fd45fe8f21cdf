"""`spira infra smoke`: each probe's verdict on a cluster's answers (a fake runner stands in for kubectl,
vault and pulumi; the commands are the ones an operator would run)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from infra import smoke
from spira.cli import cli

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
HEALTHY = {
    "pulumi": (0, CA),
    "configmap": (0, CA.strip()),
    "proxy": (0, '{"status":"success","data":{"resultType":"vector","result":[]}}'),
    "deployment": (0, "1"),
    "vault": (0, "[spira-staging-operator]"),
    "exec": (0, "401\n"),
}


class FakeCluster:
    def __init__(self, **answers: tuple[int, str]) -> None:
        self.answers = {**HEALTHY, **answers}
        self.ran: list[list[str]] = []

    def __call__(self, argv: list[str]) -> tuple[int, str]:
        self.ran.append(argv)
        joined = " ".join(argv)
        for key in ("pulumi", "configmap", "proxy", "deployment", "exec"):
            if key in joined:
                return self.answers[key]
        return self.answers["vault"]


def test_a_healthy_cluster_passes_every_probe():
    cluster = FakeCluster()
    outcomes = smoke.run("staging", cluster)
    assert [o.ok for o in outcomes] == [True] * 5
    assert ["vault", "read", "-field=token_policies", "auth/oidc/role/spira-staging-operator"] in cluster.ran
    assert any("services/prometheus-server:80/proxy/api/v1/query" in " ".join(a) for a in cluster.ran)


@pytest.mark.parametrize(
    ("broken", "answer", "failing"),
    [
        ("configmap", (0, "another CA"), "ConfigMap spira/vault-ca holds the stack's Vault CA as ca.crt"),
        ("proxy", (1, 'services "prometheus-server" not found'), "Prometheus answers queries"),
        ("deployment", (0, ""), "the Cluster Autoscaler has a ready replica"),
        ("vault", (2, "No value found at auth/oidc/role/spira-staging-operator"), "operators log in"),
        ("exec", (0, "200\n"), "MLflow refuses a request without credentials"),
    ],
)
def test_each_missing_piece_fails_its_own_probe(broken, answer, failing):
    outcomes = smoke.run("staging", FakeCluster(**{broken: answer}))
    assert [o.probe.what for o in outcomes if not o.ok] == [
        next(o.probe.what for o in outcomes if o.probe.what.startswith(failing))
    ]


def test_without_the_stacks_ca_the_smoke_check_cannot_run():
    with pytest.raises(RuntimeError, match="pulumi stack output vaultCaCertPem failed"):
        smoke.run("staging", FakeCluster(pulumi=(255, "error: no stack named 'staging' found")))


def test_the_command_refuses_an_unknown_stack():
    result = CliRunner().invoke(cli, ["infra", "smoke", "--stack", "dev"])
    assert result.exit_code == 2
    assert "--stack must be one of staging, production" in result.output
