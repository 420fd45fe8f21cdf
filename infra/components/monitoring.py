"""Prometheus (prometheus-community chart, pinned): the server the Rollout's postPromotionAnalysis
queries. Its chart scrapes every pod annotated `prometheus.io/scrape` and labels series with `namespace`
and `pod`, which the analysis query selects on; its Service and port are infra/environments.yaml's
`services.prometheus`, the address the manifests use. Its scrape jobs and intervals are
infra/monitoring/scrape.yaml and its alerting rules infra/monitoring/spira-rules.yaml, rendered by
infra/monitoring (the same declarations the local stack's Prometheus is rendered from; the chart reads rules
from its values, serverFiles.alerting_rules.yml: a PrometheusRule object would need the operator, which this
chart does not run)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.components.helm import pinned_release
from infra.environments import declared
from infra.monitoring import chart_values

ADDRESS = declared().service("prometheus")


@dataclass(frozen=True)
class MonitoringArgs:
    storage_class: str
    volume_size: str


def prometheus_values(storage_class: str, volume_size: str) -> dict:
    declared_values = chart_values()
    return {
        # Only the server: no alerting stack here.
        "alertmanager": {"enabled": False},
        "prometheus-pushgateway": {"enabled": False},
        "server": {
            "persistentVolume": {"enabled": True, "size": volume_size, "storageClass": storage_class},
            "service": {"servicePort": ADDRESS.port},
            "retention": "15d",
            **declared_values["server"],
        },
        "serverFiles": declared_values["serverFiles"],
    }


class Monitoring(pulumi.ComponentResource):
    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:platform:Monitoring", name, None, opts)
        # The chart names the server's Service <release>-server: the release carries the declared name.
        if ADDRESS.service != f"{ADDRESS.release}-server":
            raise ValueError(
                f"infra/environments.yaml: the prometheus chart names its Service {ADDRESS.release}-server, "
                f"not {ADDRESS.service}"
            )
        self.release = pinned_release(
            str(ADDRESS.release),
            "prometheus",
            ADDRESS.namespace,
            prometheus_values(args.storage_class, args.volume_size),
            pulumi.ResourceOptions(parent=self),
        )
        self.address = ADDRESS.url
        self.register_outputs({"address": self.address})
