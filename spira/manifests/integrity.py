"""Referential integrity across the layers: every reference one layer makes resolves to something the
same environment creates.

For a cluster environment the references come from the rendered manifests, the Pulumi plan (the real
program under mocks, `infra.offline`) and the secrets the seeding writes (`spira.secrets.seed`):

- each in-cluster address (`<svc>.<ns>.svc[.cluster.local][:port]`) in the manifests, in the plan's
  Kubernetes objects and outputs, and in the seeded secrets is a Service of the manifests or of the plan,
  or a Service that a Helm release of the plan creates (infra/environments.yaml says which);
- each namespace a NetworkPolicy selects exists (rendered, created by the plan or by a release);
- each in-cluster address a pod reaches (its VAULT_ADDR, the addresses in its seeded secret) is allowed by
  the egress of the NetworkPolicies that select it, and a pod Prometheus scrapes (`prometheus.io/scrape`)
  admits the declared Prometheus's namespace on the scraped port;
- each Vault role a pod logs in with is a role of the plan bound to that pod's service account and
  token audience, and its policies grant reading the secret path the pod reads, in a mounted KV engine;
- each bucket a seeded secret names is a bucket the object store creates;
- each PersistentVolumeClaim's storage class is one the plan creates;
- each secret key a workload reads (the layout's keys; the MLflow agent's template) is seeded;
- each Helm release is pinned in infra/charts.yaml and each release the declaration names is installed;
- each gate thresholds name is a file in loadtests/thresholds/.

Pure over `Inputs` (plain data), so a recorded set of references (tests/unit/manifests/data/) can be
checked exactly like the live tree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.environments import Declaration
from spira.manifests.semantic import Doc, Finding, of_kind, pod_templates, ref

# A Kubernetes Service's in-cluster DNS name, with an optional port.
IN_CLUSTER = re.compile(
    r"(?:(?P<scheme>https?)://)?(?P<svc>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
    r"\.svc(?:\.cluster\.local)?(?::(?P<port>\d+))?\b"
)
DEFAULT_PORTS = {"http": 80, "https": 443}
# Namespaces and Services every Kubernetes cluster has before the program runs.
CLUSTER_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
CLUSTER_SERVICES = (("kubernetes", "default", 443),)  # the API server
AGENT_READ = re.compile(r"\.Data\.data\.([A-Za-z0-9_]+)")
AGENT_SECRET = "vault.hashicorp.com/agent-inject-secret-"
HCL_PATH = re.compile(r'path\s+"([^"]+)"\s*\{([^}]*)\}', re.S)

RELEASE = "kubernetes:helm.sh/v3:Release"
SERVICE = "kubernetes:core/v1:Service"
NAMESPACE = "kubernetes:core/v1:Namespace"
VAULT_ROLE = "vault:jwt/authBackendRole:AuthBackendRole"
VAULT_POLICY = "vault:index/policy:Policy"
VAULT_MOUNT = "vault:index/mount:Mount"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"


@dataclass
class Inputs:
    """What one environment makes and references, as plain data."""

    env: str
    docs: list[Doc]
    # The plan's registrations: {"type", "name", "inputs"} each.
    resources: list[dict[str, Any]]
    outputs: dict[str, Any] = field(default_factory=dict)
    # service -> the secret the seeding writes (key -> value; generated keys have a description).
    seeded: dict[str, dict[str, str]] = field(default_factory=dict)
    # service -> the keys the Vault layout says its secret holds (what the workload reads).
    layout_keys: dict[str, list[str]] = field(default_factory=dict)
    charts: dict[str, dict[str, Any]] = field(default_factory=dict)
    thresholds: list[str] = field(default_factory=list)

    def of_type(self, typ: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == typ]


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


@dataclass(frozen=True)
class _Service:
    name: str
    namespace: str
    ports: frozenset[int]
    origin: str


def _services(inputs: Inputs, declaration: Declaration, engine: str | None) -> list[_Service]:
    """Every Service the environment creates: rendered, created by the plan, or by a plan's release."""
    found = [_Service(name, ns, frozenset({port}), "cluster") for name, ns, port in CLUSTER_SERVICES]
    found += [
        _Service(
            s["metadata"]["name"],
            s["metadata"].get("namespace", "default"),
            frozenset(p.get("port") for p in s["spec"].get("ports", [])),
            "manifests",
        )
        for s in of_kind(inputs.docs, "Service")
    ]
    # Argo Events' controller creates `<name>-eventsource-svc` for an EventSource with service ports
    # (its EventSource controller: fmt.Sprintf("%s-eventsource-svc", eventSource.Name)), in its namespace
    found += [
        _Service(
            f"{s['metadata']['name']}-eventsource-svc",
            s["metadata"].get("namespace", "default"),
            frozenset(p.get("port") for p in s["spec"]["service"]["ports"]),
            "manifests (EventSource)",
        )
        for s in of_kind(inputs.docs, "EventSource")
        if s.get("spec", {}).get("service", {}).get("ports")
    ]
    for r in inputs.of_type(SERVICE):
        meta, spec = r["inputs"].get("metadata", {}), r["inputs"].get("spec", {})
        found.append(
            _Service(
                meta.get("name", r["name"]),
                meta.get("namespace", "default"),
                frozenset(p.get("port") for p in spec.get("ports", [])),
                f"plan {r['name']}",
            )
        )
    releases = {(r["inputs"].get("name"), r["inputs"].get("namespace")) for r in inputs.of_type(RELEASE)}
    for role, raw in declaration.services.items():
        if "engines" in raw and engine not in raw["engines"]:
            continue  # no such engine installed: nothing of it resolves
        address = declaration.service(role, engine if "engines" in raw else None)
        if address.release and (address.release, address.namespace) in releases:
            found.append(
                _Service(
                    address.service,
                    address.namespace,
                    # a declared monitor port (NATS's /jsz, which KEDA reads) is on the same Service
                    frozenset({address.port} | ({address.monitor_port} if address.monitor_port else set())),
                    f"release {address.release}",
                )
            )
            if address.monitor_service and address.monitor_port:
                # the chart's headless Service carries every container port, the monitor's among them
                found.append(
                    _Service(
                        address.monitor_service,
                        address.namespace,
                        frozenset({address.port, address.monitor_port}),
                        f"release {address.release} (headless)",
                    )
                )
    return found


def _engine(inputs: Inputs, declaration: Declaration) -> str | None:
    store = declaration.services.get("objectstore", {})
    for r in inputs.of_type(RELEASE):
        if r["inputs"].get("name") == store.get("release"):
            return r["inputs"].get("chart")
    return None


def addresses(inputs: Inputs, declaration: Declaration) -> list[Finding]:
    """Every in-cluster address resolves to a Service (and port) the environment creates."""
    engine = _engine(inputs, declaration)
    services = _services(inputs, declaration, engine)
    sources: list[tuple[str, str, str]] = []
    for doc in inputs.docs:
        sources += [(ref(doc), path, text) for path, text in _strings(doc)]
    for r in inputs.resources:
        if r["type"].startswith("kubernetes:"):
            sources += [(f"plan {r['name']}", path, text) for path, text in _strings(r["inputs"])]
    sources += [("plan outputs", path, text) for path, text in _strings(inputs.outputs)]
    for service, secret in inputs.seeded.items():
        sources += [(f"seeded secret {service}", key, text) for key, text in secret.items()]
    out = []
    for where, path, text in sources:
        for m in IN_CLUSTER.finditer(text):
            if text[: m.start()].endswith("*."):
                continue  # a certificate's wildcard name (NATS's routes: *.nats-headless…) calls no Service
            port = int(m["port"]) if m["port"] else DEFAULT_PORTS.get(m["scheme"] or "")
            same = [s for s in services if s.name == m["svc"] and s.namespace == m["ns"]]
            if not same:
                out.append(
                    Finding(
                        "integrity",
                        f"{where} {path}",
                        f"{m.group(0)!r}: no Service {m['svc']!r} in namespace {m['ns']!r} is created "
                        f"in {inputs.env} (manifests, Pulumi resources or releases)",
                    )
                )
            elif port is not None and not any(port in s.ports for s in same):
                ports = sorted(p for s in same for p in s.ports)
                out.append(
                    Finding(
                        "integrity",
                        f"{where} {path}",
                        f"{m.group(0)!r}: Service {m['ns']}/{m['svc']} has ports {ports}, not {port}",
                    )
                )
    return out


def namespaces(inputs: Inputs) -> list[Finding]:
    """Namespaces the NetworkPolicies (rendered and the plan's) select by name exist in the environment."""
    existing = set(CLUSTER_NAMESPACES)
    existing |= {d["metadata"].get("namespace") for d in inputs.docs if d.get("metadata")}
    existing |= {d["metadata"]["name"] for d in of_kind(inputs.docs, "Namespace")}
    existing |= {r["inputs"].get("metadata", {}).get("name") for r in inputs.of_type(NAMESPACE)}
    existing |= {r["inputs"].get("namespace") for r in inputs.of_type(RELEASE)}
    policies = [(ref(p), p["spec"]) for p in of_kind(inputs.docs, "NetworkPolicy")]
    policies += [(f"plan {r['name']}", r["inputs"].get("spec", {})) for r in inputs.of_type(NETWORK_POLICY)]
    out = []
    for where, spec in policies:
        for path, text in _strings(spec):
            if (
                path.endswith("namespaceSelector.matchLabels.kubernetes.io/metadata.name")
                and text not in existing
            ):
                out.append(
                    Finding(
                        "integrity", f"{where} {path}", f"namespace {text!r} is not created in {inputs.env}"
                    )
                )
    return out


def _peer_admits(peer: Doc, namespace: str, own_namespace: str) -> bool:
    selector = peer.get("namespaceSelector")
    if selector is None:
        return "podSelector" in peer and namespace == own_namespace  # a pod of its own namespace
    names = (selector.get("matchLabels") or {}).get("kubernetes.io/metadata.name")
    return not selector or names == namespace  # {} selects every namespace


def _rule_allows(rule: Doc, namespace: str, port: int, own_namespace: str) -> bool:
    to = rule.get("to")
    ports = rule.get("ports")
    return (not to or any(_peer_admits(p, namespace, own_namespace) for p in to)) and (
        not ports or any(p.get("port") == port for p in ports)
    )


def egress(inputs: Inputs) -> list[Finding]:
    """Each in-cluster address a pod reaches is allowed by the egress of the NetworkPolicies selecting it:
    every pod the manifests create (Rollouts, Deployments, the gates' Jobs)."""
    out = []
    for doc in inputs.docs:
        if doc.get("kind") not in ("Rollout", "Deployment", "AnalysisTemplate"):
            continue
        own = doc["metadata"].get("namespace", "default")
        for where, template in pod_templates([doc]):
            labels = template.get("metadata", {}).get("labels") or {}
            policies = _selecting(inputs.docs, own, labels, "Egress")
            if not policies:
                continue  # no policy restricts its egress
            for c in template.get("spec", {}).get("containers", []):
                env = {e.get("name"): str(e.get("value", "")) for e in c.get("env", [])}
                service = env.get("VAULT_SECRET_PATH", "").rsplit("/", 1)[-1]
                targets = [("VAULT_ADDR", env.get("VAULT_ADDR", ""))]
                targets += [(f"seeded {service} {k}", v) for k, v in inputs.seeded.get(service, {}).items()]
                for what, text in targets:
                    for m in IN_CLUSTER.finditer(text):
                        port = int(m["port"]) if m["port"] else DEFAULT_PORTS.get(m["scheme"] or "", 0)
                        allowed = any(
                            _rule_allows(rule, m["ns"], port, own)
                            for p in policies
                            for rule in p["spec"].get("egress", [])
                        )
                        if not allowed:
                            out.append(
                                Finding(
                                    "integrity",
                                    f"{where} container {c.get('name')}",
                                    f"{what} {m.group(0)!r}: its NetworkPolicies allow no egress to "
                                    f"namespace {m['ns']!r} port {port}",
                                )
                            )
    return out


def _selecting(docs: list[Doc], namespace: str, labels: dict[str, str], direction: str) -> list[Doc]:
    return [
        p
        for p in of_kind(docs, "NetworkPolicy")
        if p["metadata"].get("namespace", "default") == namespace
        and direction in p["spec"].get("policyTypes", [])
        and (p["spec"].get("podSelector", {}).get("matchLabels") or {}).items() <= labels.items()
    ]


def scraping(inputs: Inputs, declaration: Declaration) -> list[Finding]:
    """Pods annotated for scraping admit the declared Prometheus's namespace on the annotated port."""
    prometheus = declaration.service("prometheus").namespace
    out = []
    for doc in of_kind(inputs.docs, "Rollout"):
        own = doc["metadata"].get("namespace", "default")
        for where, template in pod_templates([doc]):
            meta = template.get("metadata", {})
            notes = meta.get("annotations") or {}
            if notes.get("prometheus.io/scrape") != "true":
                continue
            port = int(notes.get("prometheus.io/port", 0))
            names = {
                p.get("name")
                for c in template.get("spec", {}).get("containers", [])
                for p in c.get("ports", [])
                if p.get("containerPort") == port
            }
            policies = _selecting(inputs.docs, own, meta.get("labels") or {}, "Ingress")
            admitted = not policies or any(
                (not rule.get("from") or any(_peer_admits(peer, prometheus, own) for peer in rule["from"]))
                and (not rule.get("ports") or any(p.get("port") in names | {port} for p in rule["ports"]))
                for p in policies
                for rule in p["spec"].get("ingress", [])
            )
            if not admitted:
                out.append(
                    Finding(
                        "integrity",
                        where,
                        f"Prometheus (namespace {prometheus!r}) scrapes port {port}, but the pod's "
                        "NetworkPolicies admit no ingress from it",
                    )
                )
    return out


def _policy_reads(hcl: str) -> set[str]:
    return {path for path, body in HCL_PATH.findall(hcl) if '"read"' in body}


def _grants(patterns: set[str], path: str) -> bool:
    return any(p == path or (p.endswith("*") and path.startswith(p[:-1])) for p in patterns)


def _check_login(
    inputs: Inputs, where: str, role_name: str, secret_ref: str, subject: str, audiences: set[str]
) -> list[Finding]:
    # Pods log in with their service-account token: only JWT roles (not the operators' OIDC roles).
    roles = {
        r["inputs"].get("roleName"): r["inputs"]
        for r in inputs.of_type(VAULT_ROLE)
        if r["inputs"].get("roleType") == "jwt"
    }
    role = roles.get(role_name)
    if role is None:
        return [Finding("integrity", where, f"Vault role {role_name!r} is not created in {inputs.env}")]
    out = []
    if role.get("boundSubject") != subject:
        out.append(
            Finding(
                "integrity",
                where,
                f"Vault role {role_name!r} is bound to {role.get('boundSubject')!r}, not {subject!r}",
            )
        )
    if not audiences & set(role.get("boundAudiences") or []):
        out.append(
            Finding(
                "integrity",
                where,
                f"Vault role {role_name!r} accepts audiences {role.get('boundAudiences')}, the pod's token has "
                f"{sorted(audiences)}",
            )
        )
    policies = {r["inputs"].get("name"): r["inputs"].get("policy", "") for r in inputs.of_type(VAULT_POLICY)}
    granted = set().union(*(_policy_reads(policies.get(p, "")) for p in role.get("tokenPolicies") or []))
    if not secret_ref:  # a client of /predict (the gate): it reads its identity token, no secret
        if not _grants(granted, f"identity/oidc/token/{role_name}"):
            out.append(
                Finding(
                    "integrity", where, f"the policies of Vault role {role_name!r} grant no identity token"
                )
            )
        return out
    mounts = {r["inputs"].get("path") for r in inputs.of_type(VAULT_MOUNT)}
    mount, _, rest = secret_ref.partition("/")
    if mount not in mounts:
        out.append(
            Finding("integrity", where, f"secret {secret_ref!r}: no secrets engine mounted at {mount!r}")
        )
    if not _grants(granted, f"{mount}/data/{rest}"):
        out.append(
            Finding(
                "integrity",
                where,
                f"the policies of Vault role {role_name!r} do not grant reading {secret_ref!r}",
            )
        )
    return out


def _projected_audiences(spec: Doc) -> set[str]:
    return {
        s["serviceAccountToken"].get("audience")
        for v in spec.get("volumes", [])
        for s in (v.get("projected") or {}).get("sources", [])
        if "serviceAccountToken" in s
    }


def vault_logins(inputs: Inputs) -> list[Finding]:
    """Each pod's Vault role and secret path (manifests' env, the plan's agent annotations) resolve."""
    out = []
    for doc in inputs.docs:
        namespace = doc.get("metadata", {}).get("namespace", "default")
        for where, template in pod_templates([doc]):
            spec = template.get("spec", {})
            for c in spec.get("containers", []):
                env = {e.get("name"): e.get("value") for e in c.get("env", [])}
                if "VAULT_ROLE" not in env:
                    continue
                subject = f"system:serviceaccount:{namespace}:{spec.get('serviceAccountName', 'default')}"
                out += _check_login(
                    inputs,
                    f"{where} container {c.get('name')}",
                    str(env["VAULT_ROLE"]),
                    str(env.get("VAULT_SECRET_PATH", "")),
                    subject,
                    _projected_audiences(spec),
                )
                if env.get("VAULT_PREDICT_ROLE"):  # also a client of /predict: its identity token
                    out += _check_login(
                        inputs,
                        f"{where} container {c.get('name')} VAULT_PREDICT_ROLE",
                        str(env["VAULT_PREDICT_ROLE"]),
                        "",
                        subject,
                        _projected_audiences(spec),
                    )
    for r in inputs.resources:
        if r["type"] != "kubernetes:apps/v1:Deployment":
            continue
        template = r["inputs"]["spec"]["template"]
        notes = template.get("metadata", {}).get("annotations", {})
        if "vault.hashicorp.com/role" not in notes:
            continue
        namespace = r["inputs"]["metadata"].get("namespace", "default")
        spec = template["spec"]
        subject = f"system:serviceaccount:{namespace}:{spec.get('serviceAccountName', 'default')}"
        for key, path in notes.items():
            if key.startswith(AGENT_SECRET):
                secret_ref = path.replace("/data/", "/", 1)
                out += _check_login(
                    inputs, f"plan {r['name']}", notes["vault.hashicorp.com/role"], secret_ref, subject,
                    _projected_audiences(spec),
                )  # fmt: skip
    return out


def _created_buckets(inputs: Inputs) -> set[str]:
    out: set[str] = set()
    for r in inputs.of_type(RELEASE):
        values = r["inputs"].get("values") or {}
        out |= {b["name"] for b in values.get("buckets", [])}  # MinIO
        out |= {b["name"] for b in (values.get("s3") or {}).get("createBuckets", [])}  # SeaweedFS
    return out


def buckets(inputs: Inputs) -> list[Finding]:
    created = _created_buckets(inputs)
    return [
        Finding(
            "integrity",
            f"seeded secret {service} {key}",
            f"bucket {name!r} is not created by the object store of {inputs.env} (it creates {sorted(created)})",
        )
        for service, secret in sorted(inputs.seeded.items())
        for key, name in sorted(secret.items())
        if key.endswith("_bucket") and name not in created
    ]


def storage_classes(inputs: Inputs) -> list[Finding]:
    """Each PersistentVolumeClaim the manifests render names a StorageClass the plan creates (a claim on a
    class that does not exist stays Pending, and the pods that mount it never start)."""
    created = {(r["inputs"].get("metadata") or {}).get("name") for r in inputs.of_type(STORAGE_CLASS)}
    return [
        Finding(
            "integrity",
            ref(claim),
            f"storage class {name!r} is not created by the plan of {inputs.env} "
            f"(it creates {sorted(c for c in created if c)})",
        )
        for claim in of_kind(inputs.docs, "PersistentVolumeClaim")
        if (name := claim["spec"].get("storageClassName")) not in created
    ]


def secret_keys(inputs: Inputs) -> list[Finding]:
    """Each key a workload reads is in the secret the seeding writes."""
    out = []
    for service, keys in sorted(inputs.layout_keys.items()):
        missing = sorted(set(keys) - set(inputs.seeded.get(service, {})))
        if missing:
            out.append(
                Finding("integrity", f"seeded secret {service}", f"lacks {missing}, which the workload reads")
            )
    for r in inputs.resources:
        notes = (r["inputs"].get("spec", {}).get("template", {}).get("metadata", {}) or {}).get(
            "annotations", {}
        )
        for key, text in notes.items():
            if not key.startswith("vault.hashicorp.com/agent-inject-template-"):
                continue
            service = notes.get("vault.hashicorp.com/role", "").rsplit("-", 1)[-1]
            missing = sorted(set(AGENT_READ.findall(text)) - set(inputs.seeded.get(service, {})))
            if missing:
                out.append(
                    Finding(
                        "integrity",
                        f"plan {r['name']} {key}",
                        f"reads {missing}, not in the seeded {service} secret",
                    )
                )
    return out


def charts(inputs: Inputs, declaration: Declaration) -> list[Finding]:
    out = []
    pins = {entry["chart"]: entry for entry in inputs.charts.values()}
    installed = {}
    for r in inputs.of_type(RELEASE):
        chart, version = r["inputs"].get("chart"), r["inputs"].get("version")
        installed[(r["inputs"].get("name"), r["inputs"].get("namespace"))] = chart
        pin = pins.get(chart)
        if pin is None or str(pin["version"]) != str(version):
            out.append(
                Finding(
                    "integrity",
                    f"plan release {r['name']}",
                    f"chart {chart} {version} is not pinned in infra/charts.yaml",
                )
            )
    for role, raw in declaration.services.items():
        if raw.get("release") and (raw["release"], raw["namespace"]) not in installed:
            out.append(
                Finding(
                    "integrity",
                    f"infra/environments.yaml services.{role}",
                    f"release {raw['release']!r} in namespace {raw['namespace']!r} is not installed in {inputs.env}",
                )
            )
    return out


def thresholds(inputs: Inputs) -> list[Finding]:
    return [
        Finding("integrity", f"{ref(t)} args.thresholds", f"no loadtests/thresholds/{arg.get('value')}.yaml")
        for t in of_kind(inputs.docs, "AnalysisTemplate")
        for arg in t["spec"].get("args", [])
        if arg.get("name") == "thresholds" and "value" in arg and arg["value"] not in inputs.thresholds
    ]


def check(inputs: Inputs, declaration: Declaration) -> list[Finding]:
    found = [
        *addresses(inputs, declaration),
        *namespaces(inputs),
        *egress(inputs),
        *scraping(inputs, declaration),
        *vault_logins(inputs),
        *buckets(inputs),
        *storage_classes(inputs),
        *secret_keys(inputs),
        *charts(inputs, declaration),
        *thresholds(inputs),
    ]
    return [Finding(f.check, f"{inputs.env}: {f.where}", f.message) for f in found]


# ------------------------------------------------------------------------------------ the live tree
GENERATED = "(generated by the object store)"


def live_inputs(env: str, docs: list[Doc], root: Path, overrides: dict[str, Any] | None = None) -> Inputs:
    """The references of the repository's own environment: the Pulumi plan under mocks (with config
    `overrides`, as `pulumi config set` would) and the seeding."""
    import yaml

    from infra import offline
    from infra.vault import layout
    from spira.secrets import dispatch, seed
    from spira.secrets.mlflow_users import mlflow_user

    plan = offline.run(env, overrides=overrides)
    endpoints = seed.EnvironmentEndpoints(
        str(plan.outputs["objectStoreEndpoint"]), str(plan.outputs["mlflowTrackingUri"])
    )
    workloads = [s for s in layout.SERVICES.values() if s.workload]
    seeded = {
        s.name: {
            **seed.service_values(env, s.name, endpoints),
            "s3_access_key": GENERATED,
            "s3_secret_key": GENERATED,
            # `spira secrets seed` then gives each MLflow workload its MLflow user (spira.secrets.mlflow_users)
            **(
                {"mlflow_username": mlflow_user(env, s.name), "mlflow_password": GENERATED}
                if s.name in layout.mlflow_workloads()
                else {}
            ),
            # and training the candidate step's GitHub credential, from Pulumi's candidate-dispatch secret
            **({k: GENERATED for k in layout.DISPATCH_KEYS} if s.name == dispatch.TARGET else {}),
        }
        for s in workloads
    }
    return Inputs(
        env=env,
        docs=docs,
        resources=[{"type": r.type, "name": r.name, "inputs": r.inputs} for r in plan.resources],
        outputs={k: v for k, v in plan.outputs.items() if isinstance(v, (str, int))},
        seeded=seeded,
        layout_keys={s.name: list(s.keys) for s in workloads},
        charts=yaml.safe_load((root / "infra" / "charts.yaml").read_text())["charts"],
        thresholds=sorted(p.stem for p in (root / "loadtests" / "thresholds").glob("*.yaml")),
    )
