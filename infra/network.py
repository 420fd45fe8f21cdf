"""The platform's NetworkPolicies, rendered from infra/environments.yaml `network` (pure: no Pulumi, no I/O
beyond the declaration).

Every namespace the platform owns (the workload namespace, each declared service's and each controller's:
Argo Workflows, Argo Events, Argo Rollouts, cert-manager, Kyverno, Argo CD) gets a
`default-deny` policy (every pod, ingress and egress), a `dns` policy (every pod may resolve names) and one
policy per group of its pods that a flow names: the egress rules of the flows it starts and the ingress
rules of the flows it ends. A declared flow is therefore exactly one egress rule on the client's side and one
ingress rule on the server's; nothing else is open. The Argo CD manifests carry the workload namespace's
policies (argocd/base, generated), the Pulumi program every other one and those of the pods it creates in
the workload namespace (`owner`).

`allows` evaluates the rendered policies as Kubernetes does (both ends must allow), for the tests and
`spira manifests check`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from infra.environments import Declaration, DeclarationError, declared

DEFAULT_DENY = "default-deny"
DNS_POLICY = "dns"
NAME_LABEL = "kubernetes.io/metadata.name"
ARGOCD, PULUMI = "argocd", "pulumi"
PolicyDoc = dict[str, Any]


@dataclass(frozen=True)
class Port:
    port: int | str  # a number, or a container port's name
    protocol: str = "TCP"

    def spec(self) -> dict[str, Any]:
        return {"port": self.port, "protocol": self.protocol}


@dataclass(frozen=True)
class Peer:
    """One end of a flow: pods by namespace and labels (None: every pod of the namespace), namespaces by
    their labels, or an address range."""

    name: str
    namespace: str | None = None
    labels: dict[str, str] | None = None
    namespace_labels: dict[str, str] | None = None
    cidr: str | None = None  # a literal range, or `vpc` (the context's)
    except_: tuple[str, ...] = ()
    ports: tuple[Port, ...] = ()  # the ports an outside server listens on
    owner: str | None = None  # which tool renders its policy; None: outside the platform

    @property
    def inside(self) -> bool:
        return self.owner is not None

    def selector(self) -> dict[str, Any]:
        return {"matchLabels": dict(self.labels)} if self.labels else {}

    def as_source(self, context: Context, here: str) -> dict[str, Any]:
        """The NetworkPolicy peer (`from` / `to` entry) that selects this end, seen from namespace `here`."""
        if self.cidr is not None:
            block: dict[str, Any] = {"cidr": context.resolve(self.cidr)}
            if self.except_:
                block["except"] = [context.resolve(e) for e in self.except_]
            return {"ipBlock": block}
        if self.namespace_labels is not None:
            return {"namespaceSelector": {"matchLabels": dict(self.namespace_labels)}}
        out: dict[str, Any] = {}
        if self.namespace != here:
            out["namespaceSelector"] = {"matchLabels": {NAME_LABEL: self.namespace}}
        if self.labels or "namespaceSelector" not in out:
            out["podSelector"] = self.selector()
        return out


@dataclass(frozen=True)
class Flow:
    source: Peer
    target: Peer
    ports: tuple[Port, ...]


@dataclass(frozen=True)
class Context:
    """What only the environment's stack knows: its object-store engine (None: every declared engine's port,
    as argocd/base must) and its VPC CIDR (None: no policy that needs it may be rendered)."""

    engine: str | None = None
    vpc_cidr: str | None = None

    def resolve(self, cidr: str) -> str:
        if cidr != "vpc":
            return cidr
        if self.vpc_cidr is None:
            raise DeclarationError("a flow to or from the VPC is rendered without the stack's vpcCidr")
        return self.vpc_cidr


@dataclass(frozen=True)
class Rendered:
    owner: str  # argocd | pulumi
    doc: PolicyDoc


@dataclass(frozen=True)
class Network:
    peers: dict[str, Peer]
    flows: tuple[Flow, ...]
    internal: tuple[str, ...]
    namespaces: tuple[str, ...]
    workload_namespace: str
    dns: Peer


def _ports(raw: Any) -> tuple[Port, ...]:
    out = []
    for item in raw:
        number, _, protocol = str(item).partition("/")
        out.append(Port(int(number) if number.isdigit() else number, protocol or "TCP"))
    return tuple(out)


def _service_ports(table: Declaration, name: str, key: str | None, engine: str | None) -> tuple[Port, ...]:
    raw = table.services[name]
    variants = [raw]
    if "engines" in raw:
        engines = [engine] if engine else list(raw["engines"])
        variants = [{**raw, **raw["engines"][e]} for e in engines]
    out = []
    for v in variants:
        value = v.get(key) if key else v.get("target_port", v.get("port"))
        if value is None:
            raise DeclarationError(f"infra/environments.yaml: services.{name} has no {key or 'port'}")
        out.append(Port(int(value)))
    return tuple(dict.fromkeys(out))


def network(table: Declaration | None = None, engine: str | None = None) -> Network:
    """The declared peers and flows, ports resolved (for `engine`, or every engine when None)."""
    table = table or declared()
    raw = table.network
    if not raw:
        raise DeclarationError("infra/environments.yaml declares no network")
    where = "infra/environments.yaml: network"
    ns = table.workload_namespace
    peers: dict[str, Peer] = {}
    for name, w in raw["workloads"].items():
        owner = PULUMI if w.get("pulumi") else ARGOCD
        peers[str(name)] = Peer(str(name), ns, {str(k): str(v) for k, v in w["labels"].items()}, owner=owner)
    for name, s in table.services.items():
        if s["namespace"] != ns:  # a service of the workload namespace is one of its workloads (mlflow)
            peers.setdefault(str(name), Peer(str(name), str(s["namespace"]), None, owner=PULUMI))
    controllers: list[str] = []
    for name, c in (raw.get("controllers") or {}).items():
        namespace = str(c["namespace"])
        taken = {p.namespace for p in peers.values() if p.inside} | {ns}
        if str(name) in peers or namespace in taken:
            raise DeclarationError(f"{where}.controllers: {name!r} or its namespace {namespace!r} is taken")
        peers[str(name)] = Peer(str(name), namespace, None, owner=PULUMI)
        controllers.append(namespace)
    for name, o in raw["outside"].items():
        if str(name) in peers:
            raise DeclarationError(f"{where}.outside: {name!r} is also inside the platform")
        peers[str(name)] = Peer(
            str(name),
            namespace=o.get("namespace"),
            labels=o.get("labels"),
            namespace_labels=o.get("namespace_labels"),
            cidr=o.get("cidr"),
            except_=tuple(o.get("except", ())),
            ports=_ports(o.get("ports", ())),
        )

    def peer(name: str) -> Peer:
        if name not in peers:
            raise DeclarationError(
                f"{where}: a flow names {name!r}, which is no workload, service or outside"
            )
        return peers[name]

    def ports(target: Peer, flow: dict[str, Any]) -> tuple[Port, ...]:
        if "ports" in flow:
            return _ports(flow["ports"])
        key = flow.get("port")
        if not target.inside:
            return target.ports
        if target.name in table.services and target.name not in raw["workloads"]:
            return _service_ports(table, target.name, key, engine)
        if target.name in table.services and key is None:  # a Service in the workload namespace (MLflow)
            return _service_ports(table, target.name, None, engine)
        if key is None:
            raise DeclarationError(f"{where}: a flow to the workload {target.name!r} needs `port`")
        return (Port(str(key)),)

    flows = []
    for f in raw["flows"]:
        for src in f["from"]:
            for dst in f["to"]:
                target = peer(str(dst))
                flows.append(Flow(peer(str(src)), target, ports(target, f)))
    # Whoever holds an object-store grant reaches the object store's S3 API; nobody else does.
    store = peer("objectstore")
    for service in table.access:
        flows.append(Flow(peer(service), store, _service_ports(table, "objectstore", None, engine)))
    internal = tuple(str(n) for n in raw.get("internal", ()))
    for name in internal:
        if not peer(name).inside or peer(name).labels:
            raise DeclarationError(
                f"{where}.internal: {name!r} is not a service or controller alone in its namespace"
            )
    namespaces = tuple(
        dict.fromkeys([ns, *(str(s["namespace"]) for s in table.services.values()), *controllers])
    )
    return Network(peers, tuple(flows), internal, namespaces, ns, peer("dns"))


def _rule(peers: list[dict[str, Any]], ports: tuple[Port, ...], key: str) -> dict[str, Any]:
    rule: dict[str, Any] = {key: peers}
    if ports:
        rule["ports"] = [p.spec() for p in ports]
    return rule


def _policy(name: str, namespace: str, selector: dict[str, Any], ingress: list, egress: list) -> PolicyDoc:
    spec: dict[str, Any] = {"podSelector": selector, "policyTypes": ["Ingress", "Egress"]}
    if ingress:
        spec["ingress"] = ingress
    if egress:
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "network"},
        },
        "spec": spec,
    }


def policy_name(peer: Peer) -> str:
    """A workload's policy carries its pods' name label; a service's the service's name."""
    return (peer.labels or {}).get("app.kubernetes.io/name", peer.name)


def render(
    context: Context | None = None, table: Declaration | None = None, only: str | None = None
) -> list[Rendered]:
    """Every NetworkPolicy of the platform's namespaces with the tool that applies it (`only`: that tool's)."""
    context = context or Context()
    net = network(table, context.engine)
    out: list[Rendered] = []
    for ns in net.namespaces:
        owner = ARGOCD if ns == net.workload_namespace else PULUMI
        if only not in (None, owner):
            continue
        out.append(Rendered(owner, _policy(DEFAULT_DENY, ns, {}, [], [])))
        dns = _rule([net.dns.as_source(context, ns)], net.dns.ports, "to")
        out.append(Rendered(owner, _policy(DNS_POLICY, ns, {}, [], [dns])))
    for peer in net.peers.values():
        if not peer.inside:
            continue
        # Rules that need the stack's VPC (the API server, the database) are the Pulumi program's even for
        # a pod of argocd/base: a second policy, `<name>-vpc`, adds them (policies add up).
        for owner, vpc in ((peer.owner, False), (PULUMI, True)):
            if only not in (None, owner) or (vpc and peer.owner == PULUMI):
                continue
            policy = _peer_policy(net, peer, context, vpc=None if peer.owner == PULUMI else vpc)
            if policy is not None:
                out.append(Rendered(str(owner), policy))
    return out


def _peer_policy(net: Network, peer: Peer, context: Context, vpc: bool | None) -> PolicyDoc | None:
    """The policy of `peer`'s pods: every flow it starts or ends (vpc None), or only those whose other end
    is (True) or is not (False) in the VPC."""
    here = str(peer.namespace)

    def keep(other: Peer) -> bool:
        return vpc is None or (other.cidr == "vpc") == vpc

    ingress = [
        _rule([f.source.as_source(context, here)], f.ports, "from")
        for f in net.flows
        if f.target == peer and keep(f.source)
    ]
    egress = [
        _rule([f.target.as_source(context, here)], f.ports, "to")
        for f in net.flows
        if f.source == peer and keep(f.target)
    ]
    if peer.name in net.internal and not vpc:
        ingress.append({"from": [{"podSelector": {}}]})
        egress.append({"to": [{"podSelector": {}}]})
    if not (ingress or egress):
        return None
    name = policy_name(peer) + ("-vpc" if vpc else "")
    return _policy(name, here, peer.selector(), ingress, egress)


# --- evaluation -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace, labels, named container ports) or an address outside the cluster's pods (ip)."""

    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)
    named_ports: dict[str, int] = field(default_factory=dict)
    ip: str | None = None


def _matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_selects(peer: dict[str, Any], other: Endpoint, here: str) -> bool:
    if "ipBlock" in peer:
        if other.ip is None:
            return False
        ip = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        ns_labels = {**other.namespace_labels, NAME_LABEL: other.namespace}
        if not _matches(peer["namespaceSelector"], ns_labels):
            return False
    elif other.namespace != here:
        return False
    return _matches(peer.get("podSelector"), other.labels)


def _port_matches(entries: list[dict[str, Any]] | None, port: int, protocol: str, server: Endpoint) -> bool:
    if not entries:
        return True
    for entry in entries:
        if entry.get("protocol", "TCP") != protocol:
            continue
        want = entry.get("port")
        if want is None:
            return True
        if isinstance(want, str):
            want = server.named_ports.get(want)
        if want is not None and want <= port <= entry.get("endPort", want):
            return True
    return False


def _types(spec: dict[str, Any]) -> list[str]:
    return spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])


def _side_allows(
    docs: list[PolicyDoc], me: Endpoint, other: Endpoint, server: Endpoint, port: int, protocol: str, way: str
) -> bool:
    """Do the policies of `me`'s namespace let `me` exchange this connection with `other` (way: Ingress or
    Egress)? No policy selecting `me` for that direction: allowed (and always for an address outside pods)."""
    if me.namespace is None:
        return True
    selecting = [
        d["spec"]
        for d in docs
        if d["metadata"].get("namespace") == me.namespace
        and way in _types(d["spec"])
        and _matches(d["spec"].get("podSelector") or {}, me.labels)
    ]
    if not selecting:
        return True
    key, peers_key = ("ingress", "from") if way == "Ingress" else ("egress", "to")
    return any(
        (not rule.get(peers_key) or any(_peer_selects(p, other, me.namespace) for p in rule[peers_key]))
        and _port_matches(rule.get("ports"), port, protocol, server)
        for spec in selecting
        for rule in spec.get(key, [])
    )


def allows(
    docs: list[PolicyDoc], source: Endpoint, target: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    """Whether a connection from `source` to `target` on `port` passes both the source's egress and the
    target's ingress policies (NetworkPolicy semantics: policies add up; unselected pods are open)."""
    return _side_allows(docs, source, target, target, port, protocol, "Egress") and _side_allows(
        docs, target, source, target, port, protocol, "Ingress"
    )
