"""Prometheus (prometheus-community chart, pinned): the server the Rollout's postPromotionAnalysis
queries. Its chart scrapes every pod annotated `prometheus.io/scrape` and labels series with `namespace`
and `pod`, which the analysis query selects on; its Service and port are infra/environments.yaml's
`services.prometheus`, the address the manifests use. Its scrape jobs and intervals are
infra/monitoring/scrape.yaml and its alerting rules infra/monitoring/spira-rules.yaml, rendered by
infra/monitoring (the same declarations the local stack's Prometheus is rendered from; the chart reads rules
from its values, serverFiles.alerting_rules.yml: a PrometheusRule object would need the operator, which this
chart does not run). Its Alertmanager routes the drift alert to continuous training
(infra/monitoring/alerting.py)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.components.helm import pinned_release
from infra.environments import declared
from infra.monitoring import chart_values, declaration
from infra.monitoring.alerting import alertmanager_config

ADDRESS = declared().service("prometheus")
# The platform CA the model pods' certificates chain to (Vault's CA), as the ConfigMap the workload
# namespaces get (infra/environments.yaml vault_ca), mounted where the scrape jobs' cluster_ca_file is.
# Alertmanager keeps only silences and its notification log.
ALERTMANAGER_VOLUME = "2Gi"
CA_FILES = {posixpath.dirname(job["cluster_ca_file"]) for job in declaration()["jobs"]}


@dataclass(frozen=True)
class MonitoringArgs:
    storage_class: str
    volume_size: str
    platform_ca_pem: pulumi.Input[str]


def prometheus_values(storage_class: str, volume_size: str) -> dict:
    declared_values = chart_values()
    (ca_dir,) = CA_FILES
    ca = declared().vault_ca
    return {
        # Alertmanager (the chart's alertmanager subchart; the server finds it by pod discovery) routes the
        # drift alert to continuous training's EventSource (infra/monitoring/alerting.py); its silences and
        # notification log on a small volume of the same storage class.
        "alertmanager": {
            "enabled": True,
            "persistence": {"enabled": True, "size": ALERTMANAGER_VOLUME, "storageClass": storage_class},
            "config": alertmanager_config(),
        },
        "prometheus-pushgateway": {"enabled": False},
        "server": {
            "persistentVolume": {"enabled": True, "size": volume_size, "storageClass": storage_class},
            "service": {"servicePort": ADDRESS.port},
            "retention": "15d",
            # https targets are verified against the platform CA only (infra/monitoring/scrape.yaml)
            "extraConfigmapMounts": [
                {
                    "name": "platform-ca",
                    "mountPath": ca_dir,
                    "configMap": ca.configmap,
                    "readOnly": True,
                }
            ],
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
        child = pulumi.ResourceOptions(parent=self)
        # The namespace and the CA's ConfigMap before the chart, whose server mounts it.
        namespace = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": ADDRESS.namespace}, opts=child)
        table = declared()
        platform_ca = k8s.core.v1.ConfigMap(
            f"{name}-{table.vault_ca.configmap}",
            metadata={"name": table.vault_ca.configmap, "namespace": namespace.metadata.name},
            data={table.vault_ca.key: args.platform_ca_pem},
            opts=child,
        )
        self.release = pinned_release(
            str(ADDRESS.release),
            "prometheus",
            ADDRESS.namespace,
            prometheus_values(args.storage_class, args.volume_size),
            pulumi.ResourceOptions(parent=self, depends_on=[platform_ca]),
        )
        self.address = ADDRESS.url
        self.register_outputs({"address": self.address})
