"""Checks of the burst path's manifests (docs/queue.md) that the schemas cannot express.

- Each ScaledObject scales a rendered workload that leaves its replica count to KEDA (no spec.replicas:
  Argo CD would undo every scaling), from zero, on the declared JetStream consumer's pending messages read
  at the declared NATS monitor.
- The pods it scales outlive a batch on SIGTERM: terminationGracePeriodSeconds above the declared ack_wait_s
  (a held batch takes at most ack_wait_s, or JetStream redelivers it).
- A workload scaled by KEDA is a gated canary Rollout: its first step keeps the new version at zero pods
  and an analysis runs before any step gives it pods, so a new worker version takes no live message before
  its gate passed; no traffic router (the canary's weight is its pod count).
- The workers run the HTTP service's image (same kustomize entry, so the same digest and set-image commit).
- Each workload the burst path runs has a PodDisruptionBudget.

Pure over parsed documents; the declared queue and NATS address come in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

from spira.manifests.semantic import MODEL_CONTAINER, Doc, Finding, containers, of_kind, ref

TRIGGER = "nats-jetstream"


@dataclass(frozen=True)
class QueueExpectation:
    stream: str
    consumer: str
    monitoring_endpoint: str  # host:port of the NATS monitor
    ack_wait_s: float


def _target(docs: list[Doc], scaled: Doc) -> Doc | None:
    target = scaled["spec"].get("scaleTargetRef", {})
    kind = target.get("kind", "Deployment")
    return next(
        (d for d in of_kind(docs, kind) if d["metadata"]["name"] == target.get("name")),
        None,
    )


def scaled_objects(docs: list[Doc], expect: QueueExpectation) -> list[Finding]:
    out = []
    for scaled in of_kind(docs, "ScaledObject"):
        where, spec = ref(scaled), scaled["spec"]
        target = _target(docs, scaled)
        if target is None:
            out.append(
                Finding("queue", where, f"scaleTargetRef {spec.get('scaleTargetRef')} is not rendered")
            )
            continue
        if "replicas" in target["spec"]:
            out.append(
                Finding("queue", ref(target), "sets spec.replicas: each sync would undo KEDA's scaling")
            )
        if spec.get("minReplicaCount", 0) != 0:
            out.append(Finding("queue", where, "minReplicaCount is not 0: idle workers would hold GPUs"))
        if spec.get("maxReplicaCount", 100) < 1:
            out.append(Finding("queue", where, "maxReplicaCount below 1: nothing would ever consume"))
        triggers = [t for t in spec.get("triggers", []) if t.get("type") == TRIGGER]
        if len(triggers) != 1 or len(spec.get("triggers", [])) != 1:
            out.append(Finding("queue", where, f"does not scale on exactly one {TRIGGER} trigger"))
            continue
        meta = triggers[0].get("metadata", {})
        for key, want in (
            ("natsServerMonitoringEndpoint", expect.monitoring_endpoint),
            ("stream", expect.stream),
            ("consumer", expect.consumer),
        ):
            if meta.get(key) != want:
                out.append(
                    Finding(
                        "queue", where, f"{key} is {meta.get(key)!r}; infra/environments.yaml says {want!r}"
                    )
                )
        grace = target["spec"].get("template", {}).get("spec", {}).get("terminationGracePeriodSeconds", 30)
        if grace <= expect.ack_wait_s:
            out.append(
                Finding(
                    "queue",
                    ref(target),
                    f"terminationGracePeriodSeconds {grace} does not outlive a batch "
                    f"(ack_wait_s {expect.ack_wait_s:g})",
                )
            )
        out += gated_canary(docs, target)
        out += [Finding("queue", ref(target), p) for p in _same_image_as_the_model(docs, target)]
    return out


def gated_canary(docs: list[Doc], target: Doc) -> list[Finding]:
    """A new version of a queue consumer gets no pod before an analysis passed."""
    where = ref(target)
    if target.get("kind") != "Rollout":
        return [Finding("queue", where, "is not a Rollout: a new version would consume before any gate")]
    canary = target["spec"].get("strategy", {}).get("canary")
    if canary is None:
        return [Finding("queue", where, "is not a canary Rollout (its gate is a canary analysis step)")]
    out = []
    if canary.get("trafficRouting"):
        out.append(Finding("queue", where, "routes traffic: a queue's canary share must be its pod count"))
    steps = canary.get("steps", [])
    if not steps or steps[0].get("setWeight") != 0:
        out.append(
            Finding("queue", where, "its first canary step is not setWeight 0 (no new pod before the gate)")
        )
    gated = False
    for i, step in enumerate(steps):
        if "analysis" in step and step["analysis"].get("templates"):
            gated = True
        if (step.get("setWeight") or 0) > 0 or "setCanaryScale" in step:
            if not gated:
                out.append(
                    Finding("queue", where, f"canary step {i} gives the new version pods before any analysis")
                )
            break
    if not gated:
        out.append(Finding("queue", where, "no canary analysis step: nothing gates a new worker version"))
    return out


def _same_image_as_the_model(docs: list[Doc], target: Doc) -> list[str]:
    model_images = {
        c.get("image")
        for r in of_kind(docs, "Rollout")
        for c in r["spec"].get("template", {}).get("spec", {}).get("containers", [])
        if c.get("name") == MODEL_CONTAINER
    }
    images = {c.get("image") for c in containers(target["spec"].get("template", {}))}
    if model_images and images != model_images:
        return [f"runs {sorted(images)}, not the HTTP service's image {sorted(model_images)}"]
    return []


def disruption_budgets(docs: list[Doc]) -> list[Finding]:
    """Every Deployment and every KEDA-scaled Rollout has a PodDisruptionBudget selecting its pods."""
    budgets = [
        b["spec"].get("selector", {}).get("matchLabels") or {} for b in of_kind(docs, "PodDisruptionBudget")
    ]
    scaled = {
        (s["spec"]["scaleTargetRef"].get("kind"), s["spec"]["scaleTargetRef"].get("name"))
        for s in of_kind(docs, "ScaledObject")
    }
    out = []
    for doc in docs:
        if doc.get("kind") == "Deployment" or (doc.get("kind"), doc["metadata"].get("name")) in scaled:
            labels = doc["spec"].get("template", {}).get("metadata", {}).get("labels") or {}
            if not any(sel and sel.items() <= labels.items() for sel in budgets):
                out.append(Finding("queue", ref(doc), "no PodDisruptionBudget selects its pods"))
    return out


def all_queue(docs: list[Doc], expect: QueueExpectation) -> list[Finding]:
    return [*scaled_objects(docs, expect), *disruption_budgets(docs)]
