"""Default deny in every namespace the platform owns, and exactly the flows infra/environments.yaml declares:
the policies rendered by infra/network.py (argocd/base's and the Pulumi program's), judged by a small
evaluator of NetworkPolicy semantics (both ends must allow a connection)."""

from __future__ import annotations

import copy

import pytest
import yaml

from infra import network
from infra.environments import DeclarationError, declared, parse
from infra.network import Endpoint, Peer, allows
from infra.offline import Plan
from spira.manifests import network_policies
from tests.fakes.infra import where

VPC = "10.0.0.0/16"
NAMED_PORTS = {"serving": {"http": 3000}, "intake": {"http": 8080}}
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def _docs(engine: str = "seaweedfs") -> list[dict]:
    return [r.doc for r in network.render(network.Context(engine=engine, vpc_cidr=VPC))]


def _endpoint(peer: Peer) -> Endpoint:
    """A pod (or address) the peer stands for: its labels, or a chart's own for a service's pods."""
    if peer.cidr == "vpc":
        return Endpoint(ip="10.0.3.7")
    if peer.cidr is not None:
        return Endpoint(ip="52.94.133.131")
    if peer.namespace_labels is not None:
        return Endpoint("hospital-apps", {"app": "client"}, dict(peer.namespace_labels))
    labels = dict(peer.labels or {"app.kubernetes.io/name": f"{peer.name}-chart-pod"})
    return Endpoint(str(peer.namespace), labels, named_ports=NAMED_PORTS.get(peer.name, {}))


def _number(port: network.Port, peer: Peer) -> int:
    return port.port if isinstance(port.port, int) else NAMED_PORTS[peer.name][port.port]


def _selecting(docs: list[dict], end: Endpoint, way: str) -> list[dict]:
    return [
        d["spec"]
        for d in docs
        if d["metadata"]["namespace"] == end.namespace
        and way in d["spec"]["policyTypes"]
        and network._matches(d["spec"]["podSelector"], end.labels)
    ]


def _matching_rules(
    docs: list[dict], me: Endpoint, other: Endpoint, port: int, protocol: str, way: str
) -> int:
    key, peers = ("ingress", "from") if way == "Ingress" else ("egress", "to")
    server = me if way == "Ingress" else other
    return sum(
        1
        for spec in _selecting(docs, me, way)
        for rule in spec.get(key, [])
        if any(network._peer_selects(p, other, str(me.namespace)) for p in rule[peers])
        and network._port_matches(rule.get("ports"), port, protocol, server)
    )


def test_every_namespace_the_platform_owns_denies_all_traffic_by_default_once() -> None:
    rendered = network.render(network.Context(engine="seaweedfs", vpc_cidr=VPC))
    net = network.network()
    assert set(net.namespaces) >= {"spira", "vault", "objectstore", "nats", "monitoring", "keda"}
    for ns in net.namespaces:
        denies = [
            r
            for r in rendered
            if r.doc["metadata"]["namespace"] == ns
            and r.doc["spec"]["podSelector"] == {}
            and r.doc["spec"]["policyTypes"] == ["Ingress", "Egress"]
            and "ingress" not in r.doc["spec"]
            and "egress" not in r.doc["spec"]
        ]
        assert len(denies) == 1, f"namespace {ns}: {len(denies)} default-deny policies"
        # the workload namespace's comes with argocd/base, every other one with the Pulumi program
        assert denies[0].owner == (network.ARGOCD if ns == declared().workload_namespace else network.PULUMI)


@pytest.mark.parametrize("engine", ["seaweedfs", "minio"])
def test_every_declared_flow_is_one_egress_rule_on_the_client_and_one_ingress_rule_on_the_server(
    engine: str,
) -> None:
    docs = _docs(engine)
    flows = network.network(engine=engine).flows
    assert flows
    for flow in flows:
        src, dst = _endpoint(flow.source), _endpoint(flow.target)
        for port in flow.ports:
            number = _number(port, flow.target)
            what = f"{flow.source.name} -> {flow.target.name}:{port.port}/{port.protocol}"
            assert allows(docs, src, dst, number, port.protocol), f"{what} is declared but refused"
            if flow.source.inside:
                assert _matching_rules(docs, src, dst, number, port.protocol, "Egress") == 1, what
            if flow.target.inside:
                assert _matching_rules(docs, dst, src, number, port.protocol, "Ingress") == 1, what


def test_every_pod_of_the_platform_resolves_names_through_kube_dns_only() -> None:
    docs = _docs()
    net = network.network()
    dns = _endpoint(net.dns)
    for peer in net.peers.values():
        if peer.inside:
            pod = _endpoint(peer)
            assert allows(docs, pod, dns, 53, "UDP") and allows(docs, pod, dns, 53, "TCP"), peer.name
            other = Endpoint("kube-system", {"k8s-app": "metrics-server"})
            assert not allows(docs, pod, other, 53, "UDP"), f"{peer.name} reaches any pod of kube-system"


UNDECLARED = [
    ("serving", "archive-purge", 8080),  # nothing reaches the purge job
    ("serving", "nats", 4222),  # serving is no queue client
    ("serving", "mlflow", 5000),
    ("intake", "mlflow", 5000),
    ("intake", "serving", 3000),
    ("archive-purge", "nats", 4222),
    ("gate", "nats", 4222),
    ("worker", "keda", 6443),
    ("training", "nats", 4222),
    ("vault-backup", "mlflow", 5000),
    ("model-clients", "vault", 8200),  # a hospital app reaches /predict and nothing else
    ("model-clients", "intake", 8080),
    ("intake-clients", "serving", 3000),
    ("argo-rollouts", "serving", 3000),
    ("keda", "nats", 4222),  # KEDA reads the monitor port, not the client port
    ("prometheus", "vault", 8200),
    ("serving", "aws", 443),  # no internet, no instance metadata
    ("serving", "kubernetes-api", 443),
    ("mlflow", "aws", 443),
    ("vault", "objectstore", 8333),
    ("objectstore", "vault", 8200),
    # continuous training's triggers: only the object store and Alertmanager post to the EventSource
    ("model-clients", "events-source", 12000),  # a hospital app cannot start a training run
    ("intake-clients", "events-source", 12000),
    ("serving", "events-source", 12000),
    ("training", "events-bus", 4222),  # the bus is the trigger pods' alone
    ("intake", "events-bus", 4222),
    ("events-source", "kubernetes-api", 443),  # only the Sensor creates Workflows
    ("events-bus", "kubernetes-api", 443),
    ("events-source", "vault", 8200),
    ("events-sensor", "mlflow", 5000),
    ("events-sensor", "events-source", 12000),
    # the controllers' namespaces: the API server, their webhooks, GitHub and the registry, nothing else
    ("argo", "github", 443),  # the workflow controller reaches no internet
    ("argo-events", "aws", 443),
    ("cert-manager", "aws", 443),  # a CA issuer: no ACME, no internet
    ("argo", "objectstore", 8333),  # the steps read artifacts, not the controller
    ("kyverno", "vault", 8200),
    ("argocd", "vault", 8200),
    ("argocd", "serving", 3000),
    ("argocd", "aws", 80),  # GitHub on 443 only (the repository is cloned over https)
    ("kyverno", "github", 22),
    ("serving", "argocd", 6379),  # Argo CD's redis is its own pods'
    ("training", "argocd", 8081),  # nor its repo-server
    ("argo-rollouts", "argocd", 8080),
    ("kubernetes-api", "argocd", 8080),  # no webhook in Argo CD
    ("kubernetes-api", "argo-events", 443),  # Argo Events runs no webhook
    ("kubernetes-api", "kyverno", 8000),  # its webhooks only, not its metrics
    ("kubernetes-api", "cert-manager", 9402),
    ("cert-manager", "kyverno", 9443),  # the webhooks are the API server's to call
    ("events-sensor", "argo", 9090),
    ("kyverno", "kubernetes-api", 6443),  # the API server on its declared port only
]


@pytest.mark.parametrize(("source", "target", "port"), UNDECLARED)
def test_an_undeclared_flow_is_refused(source: str, target: str, port: int) -> None:
    peers = network.network().peers
    src, dst = _endpoint(peers[source]), _endpoint(peers[target])
    assert not allows(_docs(), src, dst, port), f"{source} -> {target}:{port} is allowed but never declared"


CONTROLLERS = ("argo", "argo-events", "argo-rollouts", "cert-manager", "kyverno", "argocd")
API_SERVER = Endpoint(ip="10.0.3.7")  # the control plane's interfaces in the VPC


def test_the_controllers_namespaces_are_the_ones_the_program_installs_them_in_and_each_denies_by_default() -> (
    None
):
    from infra.components import admission, argo, certificates, workflows

    peers = network.network().peers
    installed = {
        "argo": workflows.WORKFLOWS_NAMESPACE,
        "argo-events": workflows.EVENTS_NAMESPACE,
        "argo-rollouts": argo.ROLLOUTS_NAMESPACE,
        "cert-manager": certificates.NAMESPACE,
        "kyverno": admission.NAMESPACE,
        "argocd": argo.ARGOCD_NAMESPACE,
    }
    assert {name: peers[name].namespace for name in CONTROLLERS} == installed
    rendered = network.render(network.Context(engine="seaweedfs", vpc_cidr=VPC), only=network.PULUMI)
    for ns in installed.values():
        names = {r.doc["metadata"]["name"] for r in rendered if r.doc["metadata"]["namespace"] == ns}
        assert {network.DEFAULT_DENY, network.DNS_POLICY} <= names, ns


# (from, to, port): what each controller needs; `api` is the API server (an address in the VPC)
CONTROLLER_FLOWS = [
    *[(c, "api", 443) for c in CONTROLLERS],  # watches, writes, leader leases
    ("api", "kyverno", 9443),  # Kyverno's admission (verifyImages) and cleanup webhooks
    ("api", "cert-manager", 10250),  # cert-manager's webhook
    ("kyverno", "aws", 443),  # signatures and attestations from the registry
    ("argocd", "github", 443),  # the repo-server clones the GitOps repository
    ("argo-rollouts", "github", 443),  # notifications dispatch the revert workflow
    ("argo-rollouts", "prometheus", 9090),  # post-promotion analysis queries
    ("argocd", "argocd", 6379),  # the application controller and server to redis
    ("argocd", "argocd", 8081),  # to the repo-server
]


@pytest.mark.parametrize(("source", "target", "port"), CONTROLLER_FLOWS)
def test_each_controller_reaches_what_it_needs(source: str, target: str, port: int) -> None:
    peers = network.network().peers
    src = API_SERVER if source == "api" else _endpoint(peers[source])
    dst = API_SERVER if target == "api" else _endpoint(peers[target])
    assert allows(_docs(), src, dst, port), f"{source} -> {target}:{port} is needed but refused"


def test_a_controller_in_a_namespace_the_platform_already_owns_is_refused() -> None:
    from infra.environments import DECLARATION

    raw = yaml.safe_load(DECLARATION.read_text())
    raw["network"]["controllers"]["kyverno"] = {"namespace": "vault"}
    with pytest.raises(DeclarationError, match="kyverno"):
        network.network(parse(raw))


def test_the_argo_events_pods_are_declared_by_the_names_and_port_the_trigger_objects_use() -> None:
    from infra.workflows import training_workflow
    from spira.workflow import events

    peers = network.network().peers
    assert peers["events-bus"].labels == {
        "controller": "eventbus-controller",
        "eventbus-name": events.EVENT_BUS,
    }
    assert peers["events-source"].labels == {
        "controller": "eventsource-controller",
        "eventsource-name": events.EVENT_SOURCE,
    }
    assert peers["events-sensor"].labels == {"controller": "sensor-controller", "sensor-name": events.SENSOR}
    for obj in events.trigger_objects("staging")[1:]:
        assert obj["spec"]["eventBusName"] == events.EVENT_BUS
    (service_port,) = events.event_source("staging")["spec"]["service"]["ports"]
    posted = {p.port for f in network.network().flows if f.target.name == "events-source" for p in f.ports}
    assert posted == {training_workflow().events_port} == {service_port["targetPort"]}
    # the objects' app.kubernetes.io labels do not reach Argo Events' pods: they never select them
    assert not network._matches(peers["training"].selector(), dict(peers["events-sensor"].labels or {}))


def test_no_pod_reaches_the_nodes_instance_metadata() -> None:
    docs = _docs()
    metadata = Endpoint(ip="169.254.169.254")
    for peer in network.network().peers.values():
        if peer.inside:
            for port in (80, 443):
                assert not allows(docs, _endpoint(peer), metadata, port), peer.name


def test_a_connection_needs_both_the_clients_egress_and_the_servers_ingress() -> None:
    peers = network.network().peers
    serving, vault = _endpoint(peers["serving"]), _endpoint(peers["vault"])
    docs = _docs()
    assert allows(docs, serving, vault, 8200)
    no_ingress = copy.deepcopy(docs)
    (vault_policy,) = [
        d for d in no_ingress if d["metadata"]["namespace"] == "vault" and d["metadata"]["name"] == "vault"
    ]
    vault_policy["spec"]["ingress"] = [
        r for r in vault_policy["spec"]["ingress"] if "spira-model" not in repr(r)
    ]
    assert not allows(no_ingress, serving, vault, 8200), "the server side is not checked"
    no_egress = copy.deepcopy(docs)
    (model,) = [d for d in no_egress if d["metadata"]["name"] == "spira-model"]
    model["spec"]["egress"] = [r for r in model["spec"]["egress"] if "vault" not in repr(r)]
    assert not allows(no_egress, serving, vault, 8200), "the client side is not checked"
    # a namespace without any policy (not the platform's) is open on its side
    outside = Endpoint("team-x", {"app": "x"})
    assert allows([], outside, Endpoint("team-y", {"app": "y"}), 1234)


def test_a_flow_naming_an_undeclared_end_is_refused_by_the_declaration() -> None:
    from infra.environments import DECLARATION

    raw = yaml.safe_load(DECLARATION.read_text())
    raw["network"]["flows"].append({"from": ["serving"], "to": ["the-internet"]})
    with pytest.raises(DeclarationError, match="the-internet"):
        network.network(parse(raw))


def test_argocd_base_holds_exactly_the_workload_namespaces_rendered_policies() -> None:
    assert network_policies.stale() == [], "run `spira manifests golden` and commit argocd/base"
    kustomization = yaml.safe_load((network_policies.BASE / "kustomization.yaml").read_text())
    for path in network_policies.generated():
        assert path.name in kustomization["resources"], (
            f"{path.name} is not in argocd/base/kustomization.yaml"
        )


def test_the_pulumi_program_applies_the_other_namespaces_policies(stack_plan: Plan) -> None:
    planned = stack_plan.of_type(NETWORK_POLICY)
    expected = {
        (r.doc["metadata"]["namespace"], r.doc["metadata"]["name"])
        for r in network.render(network.Context(engine="seaweedfs", vpc_cidr=VPC), only=network.PULUMI)
    }
    got = {(r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]) for r in planned}
    assert got == expected, [where(r) for r in planned]
    # with argocd/base's, they let the declared flows through and nothing else
    docs = [{**r.doc} for r in network.render(only=network.ARGOCD)]
    docs += [{"metadata": r.inputs["metadata"], "spec": r.inputs["spec"]} for r in planned]
    peers = network.network().peers
    store_ports = {8333, 9000}
    serving, store = _endpoint(peers["serving"]), _endpoint(peers["objectstore"])
    assert any(allows(docs, serving, store, p) for p in store_ports), "serving cannot reach the object store"
    assert allows(docs, _endpoint(peers["training"]), _endpoint(peers["mlflow"]), 5000)
    assert not allows(docs, _endpoint(peers["intake"]), _endpoint(peers["mlflow"]), 5000)
    assert allows(docs, _endpoint(peers["keda"]), _endpoint(peers["nats"]), 8222)
    assert not allows(docs, _endpoint(peers["serving"]), _endpoint(peers["nats"]), 4222)
    # continuous training's triggers: publish to the bus, bus routes, the Sensor's Workflow, the webhooks
    bus, sensor = _endpoint(peers["events-bus"]), _endpoint(peers["events-sensor"])
    source = _endpoint(peers["events-source"])
    assert allows(docs, source, bus, 4222) and allows(docs, sensor, bus, 4222)
    assert allows(docs, bus, bus, 6222)
    api_server = Endpoint(ip="10.40.3.7")  # in the plan's VPC (Pulumi.yaml's default vpcCidr)
    assert allows(docs, sensor, api_server, 443) and not allows(docs, source, api_server, 443)
    assert allows(docs, store, source, 12000)
    assert allows(docs, _endpoint(peers["prometheus"]), source, 12000)
    # the prometheus chart's Alertmanager pod (its own labels, in the monitoring namespace) posts /drift
    alertmanager = Endpoint(
        "monitoring", {"app.kubernetes.io/name": "alertmanager", "app.kubernetes.io/instance": "prometheus"}
    )
    assert allows(docs, alertmanager, source, 12000)
    assert not allows(docs, _endpoint(peers["model-clients"]), source, 12000)
    # the controllers' namespaces, as planned: Argo CD reaches GitHub and the API server, not Vault
    argocd, kyverno = _endpoint(peers["argocd"]), _endpoint(peers["kyverno"])
    assert allows(docs, argocd, _endpoint(peers["github"]), 443) and allows(docs, argocd, api_server, 443)
    assert not allows(docs, argocd, _endpoint(peers["vault"]), 8200)
    assert allows(docs, api_server, kyverno, 9443) and not allows(docs, api_server, kyverno, 8000)
