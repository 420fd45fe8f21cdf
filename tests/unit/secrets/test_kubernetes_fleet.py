"""A cluster's consumers through the Kubernetes API (kubectl): EndpointSlices of the model's Services,
metrics through the pod proxy, a rollout restart of MLflow's Deployment and when it is complete."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from infra.environments import declared
from spira.secrets.fleet import READY, STARTING, TERMINATING
from spira.secrets.fleet_kubernetes import RESTARTED_AT, KubernetesFleet, endpoint_instances, serving_services

NS = declared().workload_namespace


def endpoint(
    pod: str, ready: bool | None = True, terminating: bool | None = False, serving: bool = True
) -> dict:
    conditions = {
        k: v
        for k, v in (("ready", ready), ("serving", serving), ("terminating", terminating))
        if v is not None
    }
    return {
        "addresses": ["10.0.0.1"],
        "conditions": conditions,
        "targetRef": {"kind": "Pod", "name": pod, "namespace": NS},
    }


def slice_list(service: str, *endpoints: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": f"{service}-abcde", "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4",
                "endpoints": list(endpoints),
                "ports": [{"name": "http", "port": 3000, "protocol": "TCP"}],
            }
        ],
    }


class RecordingKubectl:
    """Answers kubectl commands from a table (by the first matching argument prefix); records them."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str]) -> str:
        self.calls.append(list(args))
        line = " ".join(args)
        for prefix, answer in self.answers.items():
            if prefix in line:
                return answer if isinstance(answer, str) else json.dumps(answer)
        return "{}"


def test_the_model_services_are_the_ones_argocd_base_declares() -> None:
    assert serving_services() == ("spira-model-active", "spira-model-preview")


def test_ready_starting_and_terminating_pods_are_all_consumers_once_each() -> None:
    slices = slice_list(
        "spira-model-active",
        endpoint("blue-1"),
        endpoint("blue-2", ready=False),
        endpoint("green-1", ready=False, terminating=True),
        endpoint("unset"),  # conditions left out by the API read as ready
    )
    slices["items"].append(slice_list("spira-model-preview", endpoint("blue-1"))["items"][0])
    slices["items"][-1]["endpoints"][0]["conditions"] = {}
    got = {i.name: i.state for i in endpoint_instances(slices)}
    assert got == {"blue-1": READY, "blue-2": STARTING, "green-1": TERMINATING, "unset": READY}
    assert endpoint_instances(slices)[0].address == "blue-1:3000"


def test_serving_is_discovered_behind_both_services_and_scraped_through_the_pod_proxy() -> None:
    kubectl = RecordingKubectl(
        {"get endpointslices": slice_list("spira-model-active", endpoint("blue-1")), "--raw": "gauge"}
    )
    fleet = KubernetesFleet(kubectl)
    (inst,) = fleet.instances("serving")
    assert fleet.metrics("serving", inst) == "gauge"
    assert kubectl.calls[0] == [
        "-n",
        NS,
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name in (spira-model-active,spira-model-preview)",
        "-o",
        "json",
    ]
    assert kubectl.calls[1] == ["get", "--raw", f"/api/v1/namespaces/{NS}/pods/blue-1:3000/proxy/metrics"]


def deployment(restarted: str | None, updated: int, available: int, total: int, generation: int = 3) -> dict:
    annotations = {RESTARTED_AT: restarted} if restarted else {}
    return {
        "metadata": {"name": "mlflow", "generation": generation},
        "spec": {"replicas": 2, "template": {"metadata": {"annotations": annotations}}},
        "status": {
            "observedGeneration": 3,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "replicas": total,
        },
    }


def test_mlflow_is_restarted_with_the_rollout_restart_annotation_on_its_deployment() -> None:
    kubectl = RecordingKubectl({})
    KubernetesFleet(kubectl).restart("mlflow")
    mlflow = declared().service("mlflow")
    args = kubectl.calls[0]
    assert args[:5] == ["-n", mlflow.namespace, "patch", "deployment", mlflow.service]
    stamp = json.loads(args[-1])["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    assert abs((datetime.fromisoformat(stamp) - datetime.now(UTC)).total_seconds()) < 5


SINCE = datetime(2026, 12, 7, 1, 0, 0, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    "dep,slices,begun,done",
    [
        (deployment(None, 2, 2, 2), [], False, False),
        (deployment("2026-12-07T00:59:00Z", 2, 2, 2), [], False, False),
        (deployment("2026-12-07T01:00:00Z", 1, 2, 3), [], True, False),  # an old pod still running
        (deployment("2026-12-07T01:00:00Z", 2, 2, 2, generation=4), [], True, False),  # not yet observed
        (
            deployment("2026-12-07T01:00:00Z", 2, 2, 2),
            [endpoint("old", ready=False, terminating=True)],
            True,
            False,
        ),
        (deployment("2026-12-07T01:00:00Z", 2, 2, 2), [endpoint("new-1"), endpoint("new-2")], True, True),
    ],
)
def test_a_restart_is_done_when_the_rollout_is_complete_and_no_old_pod_is_terminating(
    dep: dict, slices: list, begun: bool, done: bool
) -> None:
    kubectl = RecordingKubectl({"get deployment": dep, "get endpointslices": slice_list("mlflow", *slices)})
    state = KubernetesFleet(kubectl).restart_state("mlflow", SINCE)
    assert (state.begun, state.done) == (begun, done), state.seen


def test_training_has_no_pods_to_scrape_its_runs_are_seen_through_leases() -> None:
    assert KubernetesFleet(RecordingKubectl({})).instances("training") == []
