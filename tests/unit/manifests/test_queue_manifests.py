"""The burst path's manifests (intake, workers, their KEDA scaling and gate) hold what docs/queue.md says,
and each check fails on the mistake it exists for."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ci.set_image import set_image
from infra.environments import declared
from spira.manifests import contracts, queue_checks, queue_patches, render, schemas, semantic
from tests.unit.manifests.helpers import docs, one

VERSION = contracts.kubernetes_version()
EXPECT = queue_patches.queue_expectation()
DIGEST = "sha256:" + "ab" * 32


def queue_findings(rendered: list[dict]) -> list[str]:
    return [str(f) for f in queue_checks.all_queue(rendered, EXPECT)]


def worker(rendered: list[dict]) -> dict:
    return one(rendered, "Rollout", "spira-worker")


def scaled(rendered: list[dict]) -> dict:
    return one(rendered, "ScaledObject", "spira-worker")


@pytest.mark.parametrize("env", list(render.ENVIRONMENTS))
def test_every_environments_burst_path_passes_the_queue_checks(env):
    assert queue_findings(docs(env)) == []


def test_keda_reads_the_declared_consumer_at_the_declared_nats_monitor():
    (trigger,) = scaled(docs("production"))["spec"]["triggers"]
    nats, queue = declared().service("nats"), declared().queue
    assert trigger["type"] == "nats-jetstream"
    assert trigger["metadata"]["natsServerMonitoringEndpoint"] == "nats-headless.nats.svc.cluster.local:8222"
    assert (trigger["metadata"]["stream"], trigger["metadata"]["consumer"]) == (queue.stream, queue.consumer)
    assert nats.monitor_port == 8222
    assert queue_patches.stale() == [], "run `spira manifests golden` and commit the patches"


def test_keda_reads_the_monitor_through_the_headless_service_so_each_servers_name_resolves():
    # With 3 servers KEDA asks the consumer leader itself, at `<server name>.<endpoint host>`; the chart
    # names its servers after their pods and only its headless Service (`<release>-headless`) gives each
    # pod a DNS name, so `nats-0.nats.nats.svc…` would not resolve while `nats-0.nats-headless…` does.
    (trigger,) = scaled(docs("production"))["spec"]["triggers"]
    nats = declared().service("nats")
    host, port = trigger["metadata"]["natsServerMonitoringEndpoint"].rsplit(":", 1)
    assert host == f"{nats.release}-headless.{nats.namespace}.svc.cluster.local"
    assert int(port) == nats.monitor_port


def test_workers_scale_from_zero_and_leave_their_replicas_to_keda():
    rendered = docs("production")
    assert scaled(rendered)["spec"]["minReplicaCount"] == 0
    assert "replicas" not in worker(rendered)["spec"]
    worker(rendered)["spec"]["replicas"] = 2
    assert queue_findings(rendered) == [
        "[queue] Rollout/spira-worker: sets spec.replicas: each sync would undo KEDA's scaling"
    ]


def test_a_scaler_on_another_stream_than_the_declared_one_is_caught():
    rendered = docs()
    scaled(rendered)["spec"]["triggers"][0]["metadata"]["stream"] = "SPIRA_JOB"
    assert queue_findings(rendered) == [
        "[queue] ScaledObject/spira-worker: stream is 'SPIRA_JOB'; infra/environments.yaml says 'SPIRA_JOBS'"
    ]


def test_a_grace_period_shorter_than_a_batch_is_caught():
    rendered = docs()
    worker(rendered)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = int(EXPECT.ack_wait_s)
    (found,) = queue_findings(rendered)
    assert "does not outlive a batch" in found


def test_a_new_worker_version_gets_no_pod_before_its_gate():
    steps = worker(docs())["spec"]["strategy"]["canary"]["steps"]
    assert steps[0] == {"setWeight": 0}
    assert steps[1]["analysis"]["templates"] == [{"templateName": "spira-worker-gate"}]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([{"setWeight": 100}], "its first canary step is not setWeight 0"),
        (
            [{"setWeight": 0}, {"setWeight": 50}],
            "canary step 1 gives the new version pods before any analysis",
        ),
        ([{"setWeight": 0}], "no canary analysis step: nothing gates a new worker version"),
    ],
)
def test_a_worker_rollout_that_would_consume_before_its_gate_is_caught(steps, expected):
    rendered = docs()
    worker(rendered)["spec"]["strategy"]["canary"]["steps"] = steps
    assert any(expected in f for f in queue_findings(rendered)), queue_findings(rendered)


def test_a_worker_as_a_plain_deployment_would_take_live_messages_ungated():
    rendered = docs()
    target = worker(rendered)
    target["kind"] = "Deployment"
    scaled(rendered)["spec"]["scaleTargetRef"]["kind"] = "Deployment"
    assert any("is not a Rollout" in f for f in queue_findings(rendered))


def test_workers_run_the_http_services_image_and_a_different_one_is_caught():
    rendered = docs("staging")
    model = one(rendered, "Rollout", "spira-model")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert worker(rendered)["spec"]["template"]["spec"]["containers"][0]["image"] == model
    worker(rendered)["spec"]["template"]["spec"]["containers"][0]["image"] = (
        "registry.example/other@" + DIGEST
    )
    (found,) = queue_findings(rendered)
    assert "not the HTTP service's image" in found


def test_a_deployment_without_a_disruption_budget_is_caught():
    rendered = [
        d for d in docs() if (d["kind"], d["metadata"]["name"]) != ("PodDisruptionBudget", "spira-intake")
    ]
    assert queue_findings(rendered) == [
        "[queue] Deployment/spira-intake: no PodDisruptionBudget selects its pods"
    ]


@pytest.mark.parametrize(
    ("kind", "name", "container"),
    [
        ("Deployment", "spira-intake", "intake"),
        ("Rollout", "spira-worker", "worker"),
    ],
)
def test_the_burst_paths_pods_get_only_the_three_vault_variables(kind, name, container):
    rendered = docs("staging")
    (c,) = [
        c
        for c in one(rendered, kind, name)["spec"]["template"]["spec"]["containers"]
        if c["name"] == container
    ]
    assert {e["name"] for e in c["env"]} == semantic.VAULT_ENV
    c["env"].append({"name": "NATS_URL", "value": "nats://nats.nats.svc.cluster.local:4222"})
    found = [str(f) for f in semantic.model_env(rendered)]
    assert len(found) == 1 and f"{kind}/{name}" in found[0] and "only ['VAULT_ADDR'" in found[0]


def test_the_worker_gates_job_gets_only_the_three_vault_variables_too():
    rendered = docs("staging")
    job = one(rendered, "AnalysisTemplate", "spira-worker-gate")["spec"]["metrics"][0]["provider"]["job"]
    job["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"secretRef": {"name": "leak"}}]
    (found,) = [str(f) for f in semantic.model_env(rendered)]
    assert "AnalysisTemplate/spira-worker-gate" in found and "envFrom" in found


def test_the_scaled_object_is_validated_strictly_against_the_keda_crd():
    obj = scaled(docs())
    assert schemas.validate(obj, VERSION) == []
    obj["spec"]["minReplicaCont"] = 0
    del obj["spec"]["triggers"][0]["type"]
    messages = sorted(f"{e.path}: {e.message}" for e in schemas.validate(obj, VERSION))
    assert messages == [
        "spec.triggers[0]: 'type' is a required property",
        "spec: Additional properties are not allowed ('minReplicaCont' was unexpected)",
    ]


def test_the_intake_runs_on_the_cpu_pool_and_the_workers_on_the_gpu_pool():
    rendered = docs("production")
    intake = one(rendered, "Deployment", "spira-intake")["spec"]["template"]["spec"]
    assert intake["nodeSelector"] == {"spira.dev/pool": "system"} and "tolerations" not in intake
    spec = worker(rendered)["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"spira.dev/pool": "gpu"}
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_one_set_image_commit_moves_the_http_service_the_workers_and_their_gate(tmp_path: Path):
    root = tmp_path / "repo"
    shutil.copytree(render.REPO_ROOT / "argocd", root / "argocd")
    result = set_image(
        root, "model", f"registry.example/spira/model@{DIGEST}", model_version="12", golden=False
    )
    assert sorted(str(p) for p in result.changed) == [
        "argocd/base/kustomization.yaml",
        "argocd/base/model-rollout.yaml",
        "argocd/base/worker-rollout.yaml",
    ]
    rendered = render.parse(render.render_dir(root / "argocd" / "overlays" / "production"))
    model = one(rendered, "Rollout", "spira-model")
    gate = one(rendered, "AnalysisTemplate", "spira-worker-gate")["spec"]["metrics"][0]["provider"]["job"]
    images = {
        model["spec"]["template"]["spec"]["containers"][0]["image"],
        worker(rendered)["spec"]["template"]["spec"]["containers"][0]["image"],
        gate["spec"]["template"]["spec"]["containers"][0]["image"],
    }
    assert images == {f"registry.spira.example.org/spira/model@{DIGEST}"}
    for rollout in (model, worker(rendered)):
        assert rollout["metadata"]["annotations"]["spira.dev/model-version"] == "12"
