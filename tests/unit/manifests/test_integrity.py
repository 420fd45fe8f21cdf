"""Every cross-layer reference resolves to what the same environment creates (spira.manifests.integrity).

The recorded references of 2026-12-06 keep the check honest: it must keep finding the defects the tree
had then (a Prometheus nothing installed, a namespace nothing created, buckets named differently by the
seeding and by the object store). The live tree must have none.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from infra.environments import declared
from spira.manifests import integrity, render

DEFECTS = Path(__file__).parent / "data" / "integrity-defects-2026-12-06.yaml"


# Services declared after the recording (the burst path's NATS and KEDA): the recorded plan predates them.
DECLARED_SINCE = ("nats", "keda")
AS_RECORDED = dataclasses.replace(
    declared(), services={k: v for k, v in declared().services.items() if k not in DECLARED_SINCE}
)


def recorded() -> integrity.Inputs:
    return integrity.Inputs(**yaml.safe_load(DEFECTS.read_text()))


def messages(inputs: integrity.Inputs, declaration=AS_RECORDED) -> list[str]:
    return [str(f) for f in integrity.check(inputs, declaration)]


def test_the_references_recorded_on_2026_12_06_fail_on_prometheus_the_monitoring_namespace_and_buckets():
    found = messages(recorded())
    assert len(found) == 6, "\n".join(found)
    assert any("'http://prometheus-server.monitoring.svc.cluster.local:80': no Service" in m for m in found)
    assert any("release 'prometheus' in namespace 'monitoring' is not installed" in m for m in found)
    assert any("namespace 'monitoring' is not created in staging" in m for m in found)
    for bucket in ("spira-staging-features", "spira-staging-archive", "spira-staging-mlflow"):
        assert any(f"bucket {bucket!r} is not created by the object store" in m for m in found), bucket


@pytest.mark.parametrize("env", declared().clusters)
def test_every_cross_layer_reference_of_each_cluster_resolves(env: str):
    inputs = integrity.live_inputs(env, render.render_docs(env), render.REPO_ROOT)
    assert messages(inputs, declared()) == []


def test_the_references_also_resolve_with_the_minio_engine():
    inputs = integrity.live_inputs(
        "staging", render.render_docs("staging"), render.REPO_ROOT, overrides={"objectStore": "minio"}
    )
    assert inputs.seeded["serving"]["s3_endpoint"] == "https://objectstore.objectstore.svc.cluster.local:9000"
    assert messages(inputs, declared()) == []


def _fixed() -> integrity.Inputs:
    """The recorded references with the three defects repaired by hand: the check then finds nothing,
    so each test below isolates one broken reference."""
    inputs = recorded()
    inputs.resources.append(
        {
            "type": integrity.RELEASE,
            "name": "prometheus",
            "inputs": {
                "name": "prometheus",
                "namespace": "monitoring",
                "chart": "prometheus",
                "version": "1.0.0",
            },
        }
    )
    inputs.charts["prometheus"] = {"repo": "https://example.org", "chart": "prometheus", "version": "1.0.0"}
    store = next(r for r in inputs.resources if r["name"] == "objectstore" and r["type"] == integrity.RELEASE)
    store["inputs"]["values"]["s3"]["createBuckets"] = [
        {"name": name} for name in declared().buckets("staging").values()
    ]
    return inputs


def test_the_recorded_references_pass_once_prometheus_and_the_buckets_exist():
    assert messages(_fixed()) == []


def _rollout_env(inputs: integrity.Inputs, name: str, value: str) -> None:
    rollout = next(d for d in inputs.docs if d["kind"] == "Rollout")
    for e in rollout["spec"]["template"]["spec"]["containers"][0]["env"]:
        if e["name"] == name:
            e["value"] = value


def test_a_vault_role_the_cluster_does_not_create_is_found():
    inputs = _fixed()
    _rollout_env(inputs, "VAULT_ROLE", "spira-stagin-serving")
    assert messages(inputs) == [
        "[integrity] staging: Rollout/spira-model spec.template container model: "
        "Vault role 'spira-stagin-serving' is not created in staging"
    ]


def test_a_secret_path_the_roles_policies_do_not_grant_is_found():
    inputs = _fixed()
    _rollout_env(inputs, "VAULT_SECRET_PATH", "secret/spira/staging/training")
    found = messages(inputs)
    assert any("do not grant reading 'secret/spira/staging/training'" in m for m in found), found


def test_a_pod_whose_service_account_the_role_is_not_bound_to_is_found():
    inputs = _fixed()
    rollout = next(d for d in inputs.docs if d["kind"] == "Rollout")
    rollout["spec"]["template"]["spec"]["serviceAccountName"] = "default"
    (found,) = messages(inputs)
    assert "is bound to 'system:serviceaccount:spira:spira-serving'" in found


def test_a_service_port_that_does_not_exist_is_found():
    inputs = _fixed()
    rollout = next(d for d in inputs.docs if d["kind"] == "Rollout")
    pre = rollout["spec"]["strategy"]["blueGreen"]["prePromotionAnalysis"]["args"][0]
    pre["value"] = "http://spira-model-preview.spira.svc.cluster.local:8080"
    (found,) = messages(inputs)
    assert "Service spira/spira-model-preview has ports [3000], not 8080" in found


def test_the_service_argo_events_creates_for_the_eventsource_is_where_the_drift_webhook_posts():
    """Argo Events names an EventSource's Service `<name>-eventsource-svc`, with the EventSource's
    service ports: the address Alertmanager's receiver and the bucket notifications post to."""
    from spira.workflow import render as R

    inputs = _fixed()
    (source,) = [d for d in R.generated_objects("staging") if d["kind"] == "EventSource"]
    inputs.docs.append(source)
    assert messages(inputs) == []
    del source["spec"]["service"]  # no ports: the controller creates no Service
    found = messages(inputs)
    assert len(found) == 2 and all(  # the two webhook endpoints' address
        "no Service 'spira-training-eventsource-svc' in namespace 'spira'" in m for m in found
    ), found


def test_a_secret_key_the_mlflow_agent_reads_but_nobody_seeds_is_found():
    inputs = _fixed()
    del inputs.seeded["mlflow"]["artifacts_bucket"]
    found = messages(inputs)
    assert any("plan mlflow-server" in m and "reads ['artifacts_bucket']" in m for m in found), found
    assert any("seeded secret mlflow: lacks ['artifacts_bucket']" in m for m in found), found


def test_an_address_the_pods_network_policy_does_not_let_it_reach_is_found():
    inputs = _fixed()
    inputs.seeded["serving"]["s3_endpoint"] = "http://objectstore.objectstore.svc.cluster.local:9000"
    inputs.resources.append(
        {
            "type": integrity.SERVICE,
            "name": "objectstore",
            "inputs": {
                "metadata": {"name": "objectstore", "namespace": "objectstore"},
                "spec": {"ports": [{"port": 9000}]},
            },
        }
    )
    assert messages(inputs) == [
        "[integrity] staging: Rollout/spira-model spec.template container model: seeded serving s3_endpoint "
        "'http://objectstore.objectstore.svc.cluster.local:9000': its NetworkPolicies allow no egress to "
        "namespace 'objectstore' port 9000"
    ]


def test_a_scraped_pod_that_does_not_admit_the_declared_prometheus_is_found():
    inputs = _fixed()
    policy = next(
        d for d in inputs.docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "spira-model"
    )
    for peer in policy["spec"]["ingress"][0]["from"]:
        if (
            "namespaceSelector" in peer
            and "kubernetes.io/metadata.name" in peer["namespaceSelector"]["matchLabels"]
        ):
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] = "observability"
    found = messages(inputs)
    assert any(
        "Prometheus (namespace 'monitoring') scrapes port 3000, but the pod's NetworkPolicies admit no ingress"
        in m
        for m in found
    ), found


def test_a_release_whose_chart_is_not_pinned_is_found():
    inputs = _fixed()
    del inputs.charts["prometheus"]
    assert messages(inputs) == [
        "[integrity] staging: plan release prometheus: chart prometheus 1.0.0 is not pinned in infra/charts.yaml"
    ]


def test_gate_thresholds_without_a_file_are_found():
    inputs = copy.deepcopy(_fixed())
    inputs.thresholds.remove("staging")
    assert messages(inputs) == [
        "[integrity] staging: AnalysisTemplate/spira-gate args.thresholds: no loadtests/thresholds/staging.yaml"
    ]


def test_a_claim_on_a_storage_class_the_plan_does_not_create_is_found():
    inputs = _fixed()
    inputs.docs.append(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "spira-archive-spool", "namespace": "spira"},
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "efs-spool"},
        }
    )
    assert messages(inputs) == [
        "[integrity] staging: PersistentVolumeClaim/spira-archive-spool: storage class 'efs-spool' is not "
        "created by the plan of staging (it creates [])"
    ]
    inputs.resources.append(
        {"type": integrity.STORAGE_CLASS, "name": "spool", "inputs": {"metadata": {"name": "efs-spool"}}}
    )
    assert messages(inputs) == []


def test_the_nats_monitor_port_resolves_on_the_declared_nats_service_and_another_port_does_not():
    inputs = integrity.live_inputs("staging", render.render_docs("staging"), render.REPO_ROOT)
    nats = declared().service("nats")
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe", "namespace": "spira"}}
    probe["data"] = {
        "client": nats.url,
        "monitor": f"{nats.host}:{nats.monitor_port}",
        "wrong": f"{nats.host}:{nats.monitor_port + 1}",
    }
    inputs.docs.append(probe)
    assert messages(inputs, declared()) == [
        f"[integrity] staging: ConfigMap/probe data.wrong: '{nats.host}:8223': Service nats/nats has ports "
        "[4222, 8222], not 8223"
    ]


def test_a_gate_whose_client_role_grants_no_identity_token_is_found():
    docs = render.render_docs("staging")
    gate = next(d for d in docs if d["kind"] == "AnalysisTemplate" and d["metadata"]["name"] == "spira-gate")
    container = gate["spec"]["metrics"][0]["provider"]["job"]["spec"]["template"]["spec"]["containers"][0]
    role = next(e for e in container["env"] if e["name"] == "VAULT_ROLE")
    assert role["value"] == "spira-staging-predict-gate"
    inputs = integrity.live_inputs("staging", docs, render.REPO_ROOT)
    assert messages(inputs, declared()) == []
    # bound to the gate's account too, but its policy reads the intake client's token, not the gate's
    for r in inputs.resources:
        if r["inputs"].get("roleName") == "spira-staging-predict-gate":
            r["inputs"]["tokenPolicies"] = ["spira-staging-predict-intake"]
    # both gates (the load gate and the clinical gate's VAULT_PREDICT_ROLE) log in with that client role
    found = messages(inputs, declared())
    assert [m.split(": ")[1].split(" ")[0] for m in found] == [
        "AnalysisTemplate/spira-clinical-gate",
        "AnalysisTemplate/spira-gate",
    ]
    for message in found:
        assert "the policies of Vault role 'spira-staging-predict-gate' grant no identity token" in message


def test_a_queue_client_whose_network_policy_does_not_reach_nats_is_found():
    inputs = integrity.live_inputs("staging", render.render_docs("staging"), render.REPO_ROOT)
    clients = {"spira-intake", "spira-worker", "spira-worker-gate"}
    policies = [d for d in inputs.docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] in clients]
    assert len(policies) == len(clients)
    for policy in policies:
        policy["spec"]["egress"] = [r for r in policy["spec"]["egress"] if "nats" not in repr(r)]
    found = messages(inputs, declared())
    assert found and all("allow no egress to namespace 'nats' port 4222" in m for m in found), found
    assert {m.split(": ")[1].split(" ")[0] for m in found} == {
        "Deployment/spira-intake",
        "Rollout/spira-worker",
        "AnalysisTemplate/spira-worker-gate",
    }
