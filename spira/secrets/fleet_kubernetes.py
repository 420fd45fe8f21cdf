"""A cluster behind the Fleet port: the Kubernetes API, through `kubectl` (the operator's kubeconfig and
its credential plugin, e.g. `aws eks get-token`, exactly as for any kubectl command).

- A service's processes are the endpoints of its Services' EndpointSlices (discovery.k8s.io/v1), every
  one that is ready, serving or terminating: a pod in its termination grace still holds the key.
  serving's Services are the ones argocd/base declares (model-*-service.yaml: active and preview), MLflow's
  the one infra/environments.yaml declares.
- An instance's /metrics is read through the API server's pod proxy
  (`/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/metrics`), so the operator needs no route to pod IPs.
- A restart is `kubectl rollout restart`'s patch (the pod template's `kubectl.kubernetes.io/restartedAt`);
  it is done when the Deployment's rollout is complete (every replica updated and available, no old one
  left) and no endpoint of its Service is still terminating.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import yaml

from infra.environments import declared
from spira.secrets.fleet import READY, STARTING, TERMINATING, Fleet, FleetError, Instance, RestartState

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ARGOCD_BASE = Path(__file__).resolve().parents[2] / "argocd" / "base"

Kubectl = Callable[[Sequence[str]], str]


def serving_services(base: Path = ARGOCD_BASE) -> tuple[str, ...]:
    """The model's Services as argocd/base declares them (one resource per file: model-*-service.yaml)."""
    names = [
        yaml.safe_load(p.read_text())["metadata"]["name"] for p in sorted(base.glob("model-*-service.yaml"))
    ]
    if not names:
        raise FleetError(f"no model Service in {base} (model-*-service.yaml)")
    return tuple(names)


def kubectl_runner(context: str | None = None) -> Kubectl:
    """`kubectl ARGS` (this environment's, or the venv's), its stdout; FleetError with its stderr."""
    binary = str(Path(sys.executable).parent / "kubectl")
    binary = binary if Path(binary).exists() else "kubectl"

    def run(args: Sequence[str]) -> str:
        argv = [binary, *(["--context", context] if context else []), *args]
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FleetError(f"kubectl {' '.join(args[:3])}: {exc}") from exc
        if out.returncode != 0:
            detail = (out.stderr.strip().splitlines() or ["no output"])[-1]
            raise FleetError(f"kubectl {' '.join(args[:3])} failed: {detail}")
        return out.stdout

    return run


def endpoint_instances(slices: dict) -> list[Instance]:
    """The pods of an EndpointSlice list (`kubectl get endpointslices -o json`) that may hold a key:
    ready, serving (ready or not, still answering) or terminating."""
    seen: dict[str, Instance] = {}
    for sl in slices.get("items") or []:
        ports = sl.get("ports") or []
        port = next(
            (p["port"] for p in ports if p.get("name") == "http"), ports[0]["port"] if ports else None
        )
        for ep in sl.get("endpoints") or []:
            ref = ep.get("targetRef") or {}
            name = ref.get("name") or (ep.get("addresses") or ["?"])[0]
            cond = ep.get("conditions") or {}
            # Unset conditions: ready and serving mean true, terminating false (the API's documented reading).
            terminating = cond.get("terminating") is True
            ready = cond.get("ready") is not False and not terminating
            state = TERMINATING if terminating else READY if ready else STARTING
            if ref.get("kind", "Pod") == "Pod" and port is not None:
                seen[name] = Instance(name, state, f"{name}:{port}")
    return list(seen.values())


class KubernetesFleet(Fleet):
    restart_interrupts = False  # a rolling restart: new pods ready before old ones stop

    def __init__(self, kubectl: Kubectl, serving: tuple[str, ...] | None = None) -> None:
        self.kubectl = kubectl
        self.namespace = declared().workload_namespace
        mlflow = declared().service("mlflow")
        # The Deployment carries its Service's name (infra/components/mlflow.py).
        self.services = {
            "serving": (self.namespace, serving or serving_services()),
            "mlflow": (mlflow.namespace, (mlflow.service,)),
        }
        self.deployments = {"mlflow": (mlflow.namespace, mlflow.service)}

    def _json(self, args: Sequence[str]) -> dict:
        raw = self.kubectl([*args, "-o", "json"])
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise FleetError(f"kubectl {' '.join(args[:3])}: not JSON") from exc

    def instances(self, service: str) -> list[Instance]:
        if service not in self.services:
            return []
        namespace, names = self.services[service]
        selector = f"{SERVICE_NAME_LABEL} in ({','.join(names)})"
        return endpoint_instances(self._json(["-n", namespace, "get", "endpointslices", "-l", selector]))

    def metrics(self, service: str, instance: Instance) -> str:
        namespace = self.services[service][0]
        return self.kubectl(
            ["get", "--raw", f"/api/v1/namespaces/{namespace}/pods/{instance.address}/proxy/metrics"]
        )

    def _deployment(self, service: str) -> tuple[str, str]:
        if service not in self.deployments:
            raise FleetError(f"no Deployment is declared for {service!r}")
        return self.deployments[service]

    def restart(self, service: str) -> None:
        namespace, name = self._deployment(service)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}
        self.kubectl(
            ["-n", namespace, "patch", "deployment", name, "--type", "merge", "-p", json.dumps(patch)]
        )

    def restart_state(self, service: str, since: datetime) -> RestartState:
        namespace, name = self._deployment(service)
        d = self._json(["-n", namespace, "get", "deployment", name])
        annotations = ((d.get("spec") or {}).get("template") or {}).get("metadata", {}).get(
            "annotations"
        ) or {}
        stamp = annotations.get(RESTARTED_AT)
        restarted = datetime.fromisoformat(stamp) if stamp else None
        # A restart stamp is second-resolution; the rotation published within the same second at worst.
        if restarted is None or restarted < since.replace(microsecond=0):
            return RestartState(
                False, False, f"deployment/{name} not restarted since {since.isoformat(timespec='seconds')}"
            )
        st, want = d.get("status") or {}, (d.get("spec") or {}).get("replicas", 1)
        complete = (
            st.get("observedGeneration", 0) >= d["metadata"].get("generation", 0)
            and st.get("updatedReplicas", 0) == want
            and st.get("replicas", 0) == want
            and st.get("availableReplicas", 0) == want
        )
        left = [i for i in self.instances(service) if i.state == TERMINATING]
        seen = (
            f"deployment/{name}: {st.get('updatedReplicas', 0)}/{want} updated, "
            f"{st.get('availableReplicas', 0)} available, {st.get('replicas', 0)} in all"
            + (f"; still terminating: {', '.join(i.name for i in left)}" if left else "")
        )
        return RestartState(True, complete and not left, seen)
