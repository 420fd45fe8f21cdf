"""Where the cluster's alerts go: Alertmanager's configuration (the prometheus chart's alertmanager
subchart, infra/components/monitoring.py). Pure: returns a dict; checked with `amtool check-config` and
routed with `amtool config routes test` in tests/unit/infra/test_alertmanager_config.py.

Only the drift alert has a receiver today: Alertmanager's webhook posts it to the training EventSource's
`drift` endpoint (infra/environments.yaml `training_workflow.events`), whose Sensor submits the scheduled training run
(docs/workflows.md). Every other alert ends at the receiver `none` (it stays visible on Prometheus's
/alerts and in Alertmanager's UI) until a paging receiver is declared here.
"""

from __future__ import annotations

from typing import Any

from infra.workflows import training_workflow, webhook_url

NO_RECEIVER = "none"
DRIFT_RECEIVER = "spira-training-drift"
DRIFT_ENDPOINT = "drift"


def alertmanager_config() -> dict[str, Any]:
    drift_alert = training_workflow().drift_alert
    return {
        "global": {"resolve_timeout": "5m"},
        "templates": [],
        "route": {
            "receiver": NO_RECEIVER,
            "group_by": ["alertname", "namespace"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": [
                {
                    # One notification per drift episode, whatever the sites: grouped by the alert's name
                    # alone, so the Sensor's filter on commonLabels.alertname always matches. A repeat
                    # costs one short pod (the run's first step exits when nothing changed).
                    "matchers": [f'alertname="{drift_alert}"'],
                    "receiver": DRIFT_RECEIVER,
                    "group_by": ["alertname"],
                    "repeat_interval": "24h",
                }
            ],
        },
        "receivers": [
            {"name": NO_RECEIVER},
            {
                "name": DRIFT_RECEIVER,
                # the Sensor acts on firing notifications only; a resolved one would cost a pod for nothing
                "webhook_configs": [{"url": webhook_url(DRIFT_ENDPOINT), "send_resolved": False}],
            },
        ],
    }
