"""The burst path's cluster services: NATS with JetStream (nats-io/nats chart, pinned) and KEDA
(kedacore/keda chart, pinned), each in the namespace infra/environments.yaml names.

NATS keeps its streams in files on persistent volumes (one claim per server, the stack's encrypted storage
class); the number of servers is the declaration's `queue.replicas` for the environment (a 3-server
cluster in production keeps R3 streams through the loss of one, one server in staging). Its client Service
carries the declared name and port, and its HTTP monitor port (`/jsz`) is on the same Service: KEDA's
`nats-jetstream` scaler reads the consumer's pending messages there to scale the workers 0..N.

Who reaches NATS (the burst path's pods on the client port, KEDA on the monitor port, the servers' routes)
is infra/environments.yaml `network`, rendered with every other NetworkPolicy (infra/components/network.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.components.helm import pinned_release
from infra.environments import ServiceAddress, declared

# The chart's cluster route port (nats-io/nats values: config.cluster.port).
CLUSTER_PORT = 6222


@dataclass(frozen=True)
class QueueArgs:
    environment: str
    storage_class: str
    volume_size: str


def nats_address() -> ServiceAddress:
    return declared().service("nats")


def keda_address() -> ServiceAddress:
    return declared().service("keda")


def nats_values(replicas: int, storage_class: str, volume_size: str) -> dict:
    address = nats_address()
    if address.monitor_port is None:
        raise ValueError("infra/environments.yaml: services.nats needs monitor_port (KEDA reads /jsz there)")
    return {
        # The chart names its client Service after the release; the declared name wins either way.
        "fullnameOverride": address.service,
        "config": {
            "nats": {"port": address.port},
            "monitor": {"enabled": True, "port": address.monitor_port},
            # One server needs no routes; more form a JetStream cluster (R3 streams need three).
            "cluster": {"enabled": replicas > 1, "replicas": replicas, "port": CLUSTER_PORT},
            "jetstream": {
                "enabled": True,
                "memoryStore": {"enabled": False},
                "fileStore": {
                    "enabled": True,
                    "pvc": {"enabled": True, "size": volume_size, "storageClassName": storage_class},
                },
            },
        },
        "service": {
            "ports": {
                "nats": {"enabled": True},
                "monitor": {"enabled": True},
                "leafnodes": {"enabled": False},
                "websocket": {"enabled": False},
                "mqtt": {"enabled": False},
            }
        },
        # One server per node: a node drain or loss takes one replica of each stream, never a quorum.
        "podTemplate": {
            "topologySpreadConstraints": {
                "kubernetes.io/hostname": {"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}
            }
        },
        # No debugging toolbox pod in the clusters.
        "natsBox": {"enabled": False},
    }


# The chart names its Services after operator.name (`<operator.name>-metrics-apiserver`), not the release.
KEDA_OPERATOR = "keda-operator"


def keda_values(workload_namespace: str) -> dict:
    address = keda_address()
    if address.service != f"{KEDA_OPERATOR}-metrics-apiserver":
        raise ValueError(
            f"infra/environments.yaml: the keda chart names its metrics Service "
            f"{KEDA_OPERATOR}-metrics-apiserver, not {address.service}"
        )
    return {
        "crds": {"install": True},
        "operator": {"name": KEDA_OPERATOR},
        "service": {"portHttps": address.port},
        # KEDA scales only the workloads' namespace: it needs no rights on the others.
        "watchNamespace": workload_namespace,
    }


class Queue(pulumi.ComponentResource):
    def __init__(self, name: str, args: QueueArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:platform:Queue", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        table = declared()
        nats, keda = nats_address(), keda_address()
        replicas = table.queue.replicas(args.environment)
        self.nats = pinned_release(
            str(nats.release),
            "nats",
            nats.namespace,
            nats_values(replicas, args.storage_class, args.volume_size),
            child,
        )
        self.keda = pinned_release(
            str(keda.release),
            "keda",
            keda.namespace,
            keda_values(table.workload_namespace),
            child,
        )
        self.address = nats.url
        self.monitor = f"http://{nats.host}:{nats.monitor_port}"
        self.register_outputs(
            {"natsAddress": self.address, "natsMonitor": self.monitor, "natsReplicas": replicas}
        )
