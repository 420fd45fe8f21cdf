"""The triggers besides the schedule, as Argo Events objects: an EventBus, a webhook EventSource with two
endpoints, and the Sensor that submits the WorkflowTemplate's `scheduled` entry point.

- `drift`: Alertmanager's webhook receiver posts its notification here; the Sensor acts only on a firing
  notification of the declared drift alert (SpiraInputDrift).
- `labelled`: SeaweedFS's filer webhook (the Pulumi program writes its notification.toml,
  infra/workflows.py seaweedfs_notification) posts every create or update under the declared data prefix of
  the environment's features bucket; the Sensor acts only on the data lists (dataset.csv, noise.csv), which
  uploaders write after the recordings, so one dataset change submits one run. MinIO's engine posts
  nothing yet (its bucket events need `mc event add`, which the chart does not do).

Both submit `scheduled`, whose first step exits early when the data and code are unchanged, so a duplicate
or spurious event costs one short pod. A webhook endpoint is an engine-neutral contract: no object-store
credential is handed to Argo Events.
"""

from __future__ import annotations

from typing import Any

from infra.environments import declared
from infra.workflows import EVENT_SOURCE, LABELLED_EVENTS, labelled_key_pattern, training_workflow
from infra.workflows import event_source_url as _service_url

API_VERSION = "argoproj.io/v1alpha1"
SENSOR = "spira-training"
EVENT_BUS = "default"
# The Sensor's own service account: it may create Workflows from the template, nothing else
# (infra/components/workflows.py).
SENSOR_SERVICE_ACCOUNT = "spira-training-sensor"
LABELS = {"app.kubernetes.io/name": "spira-training", "app.kubernetes.io/part-of": "spira"}


def _meta(name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": declared().workload_namespace,
        "labels": {**LABELS, "app.kubernetes.io/component": component},
    }


def event_bus() -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "EventBus",
        "metadata": _meta(EVENT_BUS, "training-events"),
        "spec": {"jetstream": {"version": "latest", "replicas": 3}},
    }


def event_source(env: str) -> dict[str, Any]:
    port = str(training_workflow().events_port)
    endpoint = {"port": port, "method": "POST", "url": event_source_url(env)}
    return {
        "apiVersion": API_VERSION,
        "kind": "EventSource",
        "metadata": _meta(EVENT_SOURCE, "training-events"),
        "spec": {
            "eventBusName": EVENT_BUS,
            "service": {"ports": [{"port": int(port), "targetPort": int(port)}]},
            "webhook": {
                "drift": {**endpoint, "endpoint": "/drift"},
                "labelled": {**endpoint, "endpoint": "/labelled"},
            },
        },
    }


def event_source_url(env: str) -> str:
    """Where Alertmanager and the bucket notifications post (the EventSource's Service)."""
    declared().environment(env)
    return _service_url()


def sensor(env: str) -> dict[str, Any]:
    wf = training_workflow()
    workflow = {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {"generateName": f"{wf.template}-", "namespace": declared().workload_namespace},
        "spec": {"workflowTemplateRef": {"name": wf.template}, "entrypoint": "scheduled"},
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "Sensor",
        "metadata": _meta(SENSOR, "training-events"),
        "spec": {
            "eventBusName": EVENT_BUS,
            "template": {"serviceAccountName": SENSOR_SERVICE_ACCOUNT},
            "dependencies": [
                {
                    "name": "drift",
                    "eventSourceName": EVENT_SOURCE,
                    "eventName": "drift",
                    "filters": {
                        "data": [
                            {"path": "body.status", "type": "string", "value": ["firing"]},
                            {
                                "path": "body.commonLabels.alertname",
                                "type": "string",
                                "value": [wf.drift_alert],
                            },
                        ]
                    },
                },
                {
                    "name": "labelled",
                    "eventSourceName": EVENT_SOURCE,
                    "eventName": "labelled",
                    # SeaweedFS's filer webhook (infra/workflows.py seaweedfs_notification): a list of the
                    # labelled data created or rewritten in this environment's features bucket
                    "filters": {
                        "data": [
                            {
                                "path": "body.event_type",
                                "type": "string",
                                "value": [f"^({'|'.join(LABELLED_EVENTS)})$"],
                            },
                            {"path": "body.key", "type": "string", "value": [labelled_key_pattern(env)]},
                        ]
                    },
                },
            ],
            "triggers": [
                {
                    "template": {
                        "name": "retrain",
                        "conditions": "drift || labelled",
                        "argoWorkflow": {"operation": "submit", "source": {"resource": workflow}},
                    },
                    "retryStrategy": {"steps": 3, "duration": "10s", "factor": 2},
                }
            ],
        },
    }


def trigger_objects(env: str) -> list[dict[str, Any]]:
    """The EventBus, EventSource and Sensor of an environment (the base's are `local`'s)."""
    declared().environment(env)
    return [event_bus(), event_source(env), sensor(env)]
