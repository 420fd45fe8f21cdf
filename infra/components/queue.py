"""The burst path's cluster services: NATS with JetStream (nats-io/nats chart, pinned) and KEDA
(kedacore/keda chart, pinned), each in the namespace infra/environments.yaml names.

NATS keeps its streams in files on persistent volumes (one claim per server, the stack's encrypted storage
class); the number of servers is the declaration's `queue.replicas` for the environment (a 3-server
cluster in production keeps R3 streams through the loss of one, one server in staging). Its client Service
carries the declared name and port, and its HTTP monitor port (`/jsz`) is on the same Service: KEDA's
`nats-jetstream` scaler reads the consumer's pending messages there to scale the workers 0..N.

With the platform's TLS (`QueueArgs.tls`) the client port and the routes speak TLS only, with a Certificate
cert-manager issues from the platform CA (infra/components/certificates.py `nats_certificate`,
`nats_tls_values`); the declared scheme is then `tls`, so every workload's `nats_url` is `tls://…` and its
client trusts that CA alone (spira_core/tls.py `nats_tls`). The monitor port stays plain HTTP for KEDA.

Who reaches NATS (the burst path's pods on the client port, KEDA on the monitor port, the servers' routes)
is infra/environments.yaml `network`, rendered with every other NetworkPolicy (infra/components/network.py)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.components import certificates
from infra.components.helm import pinned_release
from infra.environments import ServiceAddress, declared
from infra.queue_auth import USERS, authorization
from infra.vault import layout

# The chart's cluster route port (nats-io/nats values: config.cluster.port).
CLUSTER_PORT = 6222


@dataclass(frozen=True)
class QueueArgs:
    environment: str
    storage_class: str
    volume_size: str
    # Vault's provider and mount once Vault is configured (infra/components/vault.py), else None: the NATS
    # users' passwords then reach Vault's `nats-users` at the next `pulumi up` (no workload connects before)
    secrets: object | None = None
    # The platform's cert-manager issuer (infra/components/certificates.py): NATS serves TLS with its
    # Certificate. None only for a program without in-cluster TLS; the clients' `tls://` URL then fails.
    tls: certificates.PlatformTls | None = None


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


def deep_merge(*layers: dict) -> dict:
    """The chart values of `layers`, later ones winning key by key at every depth (as Helm merges values
    files); the inputs are left untouched."""
    out: dict = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


# The workloads' NATS users (infra/queue_auth.py): their passwords reach the servers as environment
# variables from this Secret (the chart's `<< $VAR >>` leaves them unquoted for NATS to expand), never in
# the chart's values; the workloads get theirs from Vault (`nats-users`, copied by `spira secrets seed`).
NATS_USERS_SECRET = "spira-nats-users"


def password_variable(user: str) -> str:
    return f"SPIRA_NATS_{user.upper()}_PASSWORD"


def nats_auth_values() -> dict:
    """Chart values: the `authorization` block of infra/queue_auth.py (each workload user and its
    permissions, no anonymous access) and the password variables it names, from NATS_USERS_SECRET."""
    passwords = {user: f"<< ${password_variable(user)} >>" for user in USERS}
    return {
        "config": {"merge": {"authorization": authorization(declared().queue, passwords)}},
        "container": {
            "env": {
                password_variable(user): {
                    "valueFrom": {"secretKeyRef": {"name": NATS_USERS_SECRET, "key": user}}
                }
                for user in USERS
            }
        },
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
    def _users_secret(self, name: str, args: QueueArgs, ns: pulumi.Resource):
        """NATS_USERS_SECRET: a random password per workload user for the servers, and the same passwords in
        Vault's `nats-users` (once Vault is configured), from which `spira secrets seed` gives each workload
        its own in its `nats_url`. As MLflow's admin password: made here, kept in Vault."""
        import pulumi_random as random

        child = pulumi.ResourceOptions(parent=self)
        passwords = {
            user: random.RandomPassword(f"{name}-nats-{user}", length=32, special=False, opts=child).result
            for user in USERS
        }
        if args.secrets is not None:
            import pulumi_vault as vault

            vault.kv.SecretV2(
                f"{name}-vault-nats-users",
                mount=args.secrets.mount.mount,
                name=layout.secret_path(args.environment, "nats-users"),
                data_json=pulumi.Output.json_dumps(passwords),
                opts=pulumi.ResourceOptions(parent=self, provider=args.secrets.provider),
            )
        return k8s.core.v1.Secret(
            f"{name}-nats-users",
            metadata={"name": NATS_USERS_SECRET, "namespace": nats_address().namespace},
            string_data={user: pulumi.Output.secret(p) for user, p in passwords.items()},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns]),
        )

    def __init__(self, name: str, args: QueueArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:platform:Queue", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        table = declared()
        nats, keda = nats_address(), keda_address()
        replicas = table.queue.replicas(args.environment)
        if (args.tls is not None) != (nats.scheme == "tls"):
            raise ValueError(
                f"infra/environments.yaml: services.nats.scheme is {nats.scheme}, but the Queue is given "
                f"{'the' if args.tls else 'no'} platform TLS: the clients' URLs would not match the server"
            )
        ns = k8s.core.v1.Namespace(f"{name}-nats-ns", metadata={"name": nats.namespace}, opts=child)
        before: list[pulumi.Resource] = [self._users_secret(name, args, ns)]
        layers = [nats_values(replicas, args.storage_class, args.volume_size), nats_auth_values()]
        if args.tls is not None:
            # The chart mounts the Secret cert-manager writes: created (and issued) before the release.
            body = certificates.nats_certificate(nats.service, nats.namespace)
            before.append(args.tls.certificate(f"{name}-nats-tls", body, depends_on=[ns]))
            layers.append(certificates.nats_tls_values())
        self.nats = pinned_release(
            str(nats.release),
            "nats",
            nats.namespace,
            deep_merge(*layers),
            pulumi.ResourceOptions(parent=self, depends_on=before),
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
