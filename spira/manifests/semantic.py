"""Checks the schemas cannot express: what the controllers would refuse, or what would bite at runtime.

Pure functions over parsed documents; the contracts they compare against (GPU pool, Vault layout, stack
sizes) come in as arguments, read by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from serving.archive import SPOOL_DIR, UPLOADER_MODULE
from spira_core.vault.settings import DEFAULT_TOKEN_PATH, vault_ca_path

Doc = dict[str, Any]

DIGEST_REF = re.compile(r"^[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?@sha256:[0-9a-f]{64}$")
ARG_REF = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")
VAULT_ENV = frozenset({"VAULT_ADDR", "VAULT_ROLE", "VAULT_SECRET_PATH"})
# A secret reader that is also a client of /predict (the clinical gate's Job) names its client role: a role
# name (infra/vault/clients.py), not a secret, logged in with the same projected token.
VAULT_OPTIONAL_ENV = frozenset({"VAULT_PREDICT_ROLE"})
# The model's TLS (spira_core/tls.py): BentoML's override of its `ssl` settings, naming the files of the
# mounted Certificate Secret. A literal, and only ssl keys: no secret or setting travels this way.
SSL_OVERRIDE_ENV = "BENTOML_CONFIG_OPTIONS"
SSL_OVERRIDE_PREFIX = "services.spira.ssl."
# A client of the https model (the clinical gate) trusts the platform CA through OpenSSL's own variable,
# and only as the ca.crt projected beside its Vault token.
TRUST_ENV = "SSL_CERT_FILE"
# BentoML writes its home (BENTOML_HOME) and Python/torch write /tmp; with a read-only root filesystem
# both must be emptyDir mounts or the server cannot start.
MODEL_WRITABLE_DIRS = ("/home/bentoml", "/tmp")
MODEL_CONTAINER = "model"
UPLOADER_CONTAINER = "uploader"  # the archive's uploader, the model pod's native sidecar
UPLOADER_COMMAND = ["python", "-m", UPLOADER_MODULE]
READINESS_PATH = "/readyz"
LIVENESS_PATH = "/livez"


@dataclass(frozen=True)
class Finding:
    check: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.where}: {self.message}"


@dataclass(frozen=True)
class GpuPool:
    taint_key: str
    taint_value: str
    taint_effect: str
    label_key: str
    label_value: str
    resource: str


@dataclass(frozen=True)
class VaultExpectation:
    namespace: str
    service_account: str
    audience: str
    role: str
    secret_path: str
    # The ConfigMap (and its key) holding Vault's CA, projected as ca.crt beside the token.
    ca_configmap: str
    ca_key: str


def ref(doc: Doc) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def pod_templates(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    """(where, pod template) of every pod the objects would create: Rollouts, Deployments and the gates'
    Jobs."""
    for doc in docs:
        if doc.get("kind") in ("Rollout", "Deployment"):
            yield f"{ref(doc)} spec.template", doc["spec"].get("template", {})
        elif doc.get("kind") == "AnalysisTemplate":
            for i, metric in enumerate(doc["spec"].get("metrics", [])):
                job = metric.get("provider", {}).get("job")
                if job:
                    yield f"{ref(doc)} metrics[{i}] job", job.get("spec", {}).get("template", {})


def containers(template: Doc) -> list[Doc]:
    spec = template.get("spec", {})
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


def _model(rollout: Doc) -> Doc | None:
    for c in rollout["spec"].get("template", {}).get("spec", {}).get("containers", []):
        if c.get("name") == MODEL_CONTAINER:
            return c
    return None


def _rollouts(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    for rollout in of_kind(docs, "Rollout"):
        model = _model(rollout)
        if model is not None:
            yield rollout, model


def images_pinned(docs: list[Doc]) -> list[Finding]:
    out = []
    for where, template in pod_templates(docs):
        for c in containers(template):
            image = c.get("image", "")
            if not DIGEST_REF.match(image):
                out.append(
                    Finding(
                        "image-digest",
                        f"{where} container {c.get('name')}",
                        f"image {image!r} is not pinned as name@sha256:<64 hex>",
                    )
                )
    return out


def kustomization_images(kustomization: Doc) -> list[Finding]:
    """The base's `images:` entries: a digest, never a tag (a tag would win over nothing and drift)."""
    out = []
    for entry in kustomization.get("images", []):
        where = f"kustomization images {entry.get('name')}"
        if "newTag" in entry:
            out.append(Finding("image-digest", where, "uses newTag; images are referenced by digest only"))
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", str(entry.get("digest", ""))):
            out.append(
                Finding("image-digest", where, f"digest {entry.get('digest')!r} is not sha256:<64 hex>")
            )
    return out


def _port_names(container: Doc) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}


def _resolve_port(container: Doc, port: Any) -> int | None:
    numbers = {p["containerPort"] for p in container.get("ports", [])}
    if isinstance(port, int):
        return port if port in numbers else None
    return _port_names(container).get(str(port))


def services_select_pods(docs: list[Doc]) -> list[Finding]:
    out = []
    templates = [t for _, t in pod_templates(docs)]
    for svc in of_kind(docs, "Service"):
        selector = svc["spec"].get("selector") or {}
        if not selector:
            out.append(Finding("service-selector", ref(svc), "has no selector"))
            continue
        selected = [
            t for t in templates if selector.items() <= (t.get("metadata", {}).get("labels") or {}).items()
        ]
        if not selected:
            out.append(Finding("service-selector", ref(svc), f"selector {selector} matches no pod template"))
            continue
        for port in svc["spec"].get("ports", []):
            target = port.get("targetPort", port.get("port"))
            if not any(_resolve_port(c, target) for t in selected for c in containers(t)):
                out.append(
                    Finding(
                        "service-selector",
                        ref(svc),
                        f"targetPort {target!r} is no container port of the selected pods",
                    )
                )
    return out


def blue_green(docs: list[Doc]) -> list[Finding]:
    """The HTTP service's Rollout (the one with the model container) is blue/green behind its gate; the
    queue workers' Rollout is a gated canary instead (spira/manifests/queue_checks.py)."""
    out = []
    services = {s["metadata"]["name"] for s in of_kind(docs, "Service")}
    for rollout, _ in _rollouts(docs):
        bg = rollout["spec"].get("strategy", {}).get("blueGreen")
        if bg is None:
            out.append(Finding("blue-green", ref(rollout), "is not a blueGreen rollout"))
            continue
        active, preview = bg.get("activeService"), bg.get("previewService")
        if not preview:
            out.append(
                Finding("blue-green", ref(rollout), "has no previewService: the gate would test nothing")
            )
        if active == preview:
            out.append(
                Finding("blue-green", ref(rollout), f"activeService and previewService are both {active!r}")
            )
        for name in (active, preview):
            if name and name not in services:
                out.append(Finding("blue-green", ref(rollout), f"Service {name!r} is not rendered"))
        if not bg.get("prePromotionAnalysis"):
            out.append(
                Finding("blue-green", ref(rollout), "has no prePromotionAnalysis: nothing gates promotion")
            )
    return out


def _template_args(template: Doc) -> tuple[dict[str, Doc], set[str]]:
    declared = {a["name"]: a for a in template["spec"].get("args", [])}
    used = set(ARG_REF.findall(repr(template["spec"].get("metrics", []))))
    return declared, used


def analysis_references(docs: list[Doc]) -> list[Finding]:
    out = []
    templates = {t["metadata"]["name"]: t for t in of_kind(docs, "AnalysisTemplate")}
    for _name, template in templates.items():
        declared, used = _template_args(template)
        for arg in sorted(used - declared.keys()):
            out.append(
                Finding("analysis-args", ref(template), f"uses {{{{args.{arg}}}}} but does not declare it")
            )
    for rollout in of_kind(docs, "Rollout"):
        strategy = rollout["spec"].get("strategy", {})
        bg = strategy.get("blueGreen", {})
        phases = [(phase, bg.get(phase)) for phase in ("prePromotionAnalysis", "postPromotionAnalysis")]
        phases += [
            (f"canary steps[{i}] analysis", step.get("analysis"))
            for i, step in enumerate((strategy.get("canary") or {}).get("steps", []))
        ]
        for phase, analysis in phases:
            if not analysis:
                continue
            given = {a["name"] for a in analysis.get("args", [])}
            # Argo Rollouts flattens the listed templates into one AnalysisRun whose args are all of theirs:
            # a given arg is unknown only when no listed template declares it.
            listed = [
                templates[e["templateName"]]
                for e in analysis.get("templates", [])
                if e.get("templateName") in templates
            ]
            declared_by_any = set().union(*(_template_args(t)[0].keys() for t in listed))
            for entry in analysis.get("templates", []):
                tname = entry.get("templateName")
                where = f"{ref(rollout)} {phase}"
                if entry.get("clusterScope"):
                    out.append(
                        Finding(
                            "analysis-args", where, f"{tname!r} is a ClusterAnalysisTemplate, not rendered"
                        )
                    )
                    continue
                if tname not in templates:
                    out.append(Finding("analysis-args", where, f"AnalysisTemplate {tname!r} is not rendered"))
                    continue
                declared, _ = _template_args(templates[tname])
                missing = sorted(
                    n
                    for n, a in declared.items()
                    if n not in given and "value" not in a and "valueFrom" not in a
                )
                if missing:
                    out.append(
                        Finding("analysis-args", where, f"{tname} needs args {missing} it is not given")
                    )
            unknown = sorted(given - declared_by_any)
            if unknown and len(listed) == len(analysis.get("templates", [])):
                out.append(
                    Finding(
                        "analysis-args",
                        f"{ref(rollout)} {phase}",
                        f"passes args {unknown} that no template declares",
                    )
                )
    return out


def probes(docs: list[Doc]) -> list[Finding]:
    out = []
    for rollout, model in _rollouts(docs):
        where = f"{ref(rollout)} container {MODEL_CONTAINER}"
        for field, path in (("readinessProbe", READINESS_PATH), ("livenessProbe", LIVENESS_PATH)):
            http = (model.get(field) or {}).get("httpGet")
            if not http:
                out.append(Finding("probes", where, f"{field} is not an httpGet probe"))
                continue
            if http.get("path") != path:
                out.append(Finding("probes", where, f"{field} hits {http.get('path')!r}, not {path}"))
            if _resolve_port(model, http.get("port")) is None:
                out.append(
                    Finding("probes", where, f"{field} port {http.get('port')!r} is no container port")
                )
    for rollout in of_kind(docs, "Rollout"):
        if "blueGreen" in rollout["spec"].get("strategy", {}) and _model(rollout) is None:
            out.append(Finding("probes", ref(rollout), f"has no container named {MODEL_CONTAINER!r}"))
    return out


def _gpu_pods(docs: list[Doc], pool: GpuPool) -> Iterator[tuple[str, Doc, Doc]]:
    """(where, pod spec, GPU container) of the model and of every other pod whose containers ask for GPUs."""
    for rollout, model in _rollouts(docs):
        yield ref(rollout), rollout["spec"]["template"]["spec"], model
    for where, template in pod_templates(docs):
        for c in containers(template):
            if where.startswith("Rollout/") and c.get("name") == MODEL_CONTAINER:
                continue
            resources = c.get("resources", {})
            if pool.resource in {**resources.get("requests", {}), **resources.get("limits", {})}:
                yield where, template.get("spec", {}), c


def gpu_pool(docs: list[Doc], pool: GpuPool) -> list[Finding]:
    out = []
    for where, spec, model in _gpu_pods(docs, pool):
        tolerated = any(
            t.get("key") == pool.taint_key
            and t.get("effect") == pool.taint_effect
            and (
                (t.get("operator", "Equal") == "Equal" and t.get("value") == pool.taint_value)
                or t.get("operator") == "Exists"
            )
            for t in spec.get("tolerations", [])
        )
        if not tolerated:
            out.append(
                Finding(
                    "gpu-pool",
                    where,
                    f"does not tolerate the GPU pool taint "
                    f"{pool.taint_key}={pool.taint_value}:{pool.taint_effect}",
                )
            )
        if (spec.get("nodeSelector") or {}).get(pool.label_key) != pool.label_value:
            out.append(Finding("gpu-pool", where, f"nodeSelector lacks {pool.label_key}: {pool.label_value}"))
        resources = model.get("resources", {})
        limit = str(resources.get("limits", {}).get(pool.resource, ""))
        if not limit.isdigit() or int(limit) < 1:
            out.append(
                Finding("gpu-pool", where, f"container {model.get('name')} has no {pool.resource} limit")
            )
        elif str(resources.get("requests", {}).get(pool.resource, limit)) != limit:
            out.append(Finding("gpu-pool", where, f"{pool.resource} request and limit differ"))
    return out


def _secret_readers(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    """(where, container) of every workload container that reads a Vault secret: the model, the intake,
    the queue workers and their gate (those that name a VAULT_SECRET_PATH)."""
    for rollout, model in _rollouts(docs):
        yield f"{ref(rollout)} container {MODEL_CONTAINER}", model
    for where, template in pod_templates(docs):
        for c in containers(template):
            if c.get("name") == MODEL_CONTAINER and where.startswith("Rollout/"):
                continue  # the model, above
            if any(e.get("name") == "VAULT_SECRET_PATH" for e in c.get("env", [])):
                yield f"{where} container {c.get('name')}", c


def model_env(docs: list[Doc]) -> list[Finding]:
    """Workloads that read a Vault secret get the three VAULT_* variables and nothing else: their secrets
    and settings come from Vault."""
    out = []
    for where, model in _secret_readers(docs):
        names = [e.get("name") for e in model.get("env", [])]
        optional = VAULT_OPTIONAL_ENV | {SSL_OVERRIDE_ENV, TRUST_ENV}
        if set(names) - optional != VAULT_ENV or len(names) != len(set(names)):
            out.append(
                Finding(
                    "env",
                    where,
                    f"env is {names}; only {sorted(VAULT_ENV)} are allowed (secrets and settings come from "
                    "Vault)",
                )
            )
        if model.get("envFrom"):
            out.append(Finding("env", where, "envFrom would add variables beyond the Vault three"))
        for e in model.get("env", []):
            if e.get("name") == SSL_OVERRIDE_ENV:
                keys = [item.split("=", 1)[0] for item in str(e.get("value", "")).split()]
                if not keys or any(not k.startswith(SSL_OVERRIDE_PREFIX) for k in keys):
                    out.append(
                        Finding("env", where, f"{SSL_OVERRIDE_ENV} may set only {SSL_OVERRIDE_PREFIX}* (TLS)")
                    )
            if e.get("name") == TRUST_ENV:
                token_dirs = {
                    m.get("mountPath")
                    for m in model.get("volumeMounts", [])
                    if m.get("name") == "vault-token"
                }
                if e.get("value") not in {f"{d}/ca.crt" for d in token_dirs}:
                    out.append(Finding("env", where, f"{TRUST_ENV} is not the ca.crt beside the Vault token"))
        for e in model.get("env", []):
            if "valueFrom" in e:
                out.append(Finding("env", where, f"{e.get('name')} reads a valueFrom; only literal values"))
    return out


def _env_value(model: Doc, name: str) -> str | None:
    return next((e.get("value") for e in model.get("env", []) if e.get("name") == name), None)


def vault_identity(docs: list[Doc], expect: VaultExpectation) -> list[Finding]:
    out = []
    for rollout, model in _rollouts(docs):
        where = ref(rollout)
        spec = rollout["spec"]["template"]["spec"]
        if rollout["metadata"].get("namespace") != expect.namespace:
            out.append(
                Finding(
                    "vault", where, f"namespace is not {expect.namespace!r} (Vault binds the token subject)"
                )
            )
        if spec.get("serviceAccountName") != expect.service_account:
            out.append(Finding("vault", where, f"serviceAccountName is not {expect.service_account!r}"))
        for name, want in (("VAULT_ROLE", expect.role), ("VAULT_SECRET_PATH", expect.secret_path)):
            got = _env_value(model, name)
            if got != want:
                out.append(Finding("vault", where, f"{name} is {got!r}; infra/vault/layout.py says {want!r}"))
        audiences = [
            s["serviceAccountToken"].get("audience")
            for v in spec.get("volumes", [])
            for s in (v.get("projected") or {}).get("sources", [])
            if "serviceAccountToken" in s
        ]
        if expect.audience not in audiences:
            out.append(
                Finding(
                    "vault", where, f"no projected service-account token with audience {expect.audience!r}"
                )
            )
        out += [Finding("vault", where, p) for p in _vault_volume(spec, model, expect)]
        addr = _env_value(model, "VAULT_ADDR") or ""
        if urlsplit(addr).scheme != "https":
            out.append(
                Finding("vault", where, f"VAULT_ADDR {addr!r} is not https (the CA is trusted over TLS)")
            )
    sa_names = {s["metadata"]["name"] for s in of_kind(docs, "ServiceAccount")}
    if expect.service_account not in sa_names:
        out.append(Finding("vault", f"ServiceAccount/{expect.service_account}", "is not rendered"))
    return out


def _vault_volume(spec: Doc, model: Doc, expect: VaultExpectation) -> list[str]:
    """The token and Vault's CA in one projected volume, mounted where the runtime client reads them:
    /var/run/secrets/vault/token and ca.crt beside it (spira_core.vault.settings)."""
    token_path = Path(DEFAULT_TOKEN_PATH)
    ca_file = vault_ca_path(token_path).name
    holders = [
        v
        for v in spec.get("volumes", [])
        if any(
            (s.get("serviceAccountToken") or {}).get("audience") == expect.audience
            for s in (v.get("projected") or {}).get("sources", [])
        )
    ]
    if len(holders) != 1:
        return []  # reported above as a missing token
    volume = holders[0]
    problems = []
    mounts = [
        m.get("mountPath") for m in model.get("volumeMounts", []) if m.get("name") == volume.get("name")
    ]
    if mounts != [str(token_path.parent)]:
        problems.append(f"volume {volume.get('name')} is mounted at {mounts}, not {str(token_path.parent)!r}")
    sources = volume["projected"]["sources"]
    paths = [(s.get("serviceAccountToken") or {}).get("path") for s in sources if "serviceAccountToken" in s]
    if paths != [token_path.name]:
        problems.append(f"the token's path is {paths}, not {token_path.name!r}")
    ca = [
        (s["configMap"].get("name"), item.get("key"))
        for s in sources
        if "configMap" in s
        for item in s["configMap"].get("items", [])
        if item.get("path") == ca_file
    ]
    if not ca:
        problems.append(f"no ConfigMap projected as {ca_file} beside the token (Vault's CA)")
    for name, key in ca:
        for what, got, want in (("ConfigMap", name, expect.ca_configmap), ("key", key, expect.ca_key)):
            if got != want:
                problems.append(f"{ca_file} comes from {what} {got!r}, not {want!r}")
    return problems


def _secure_container(c: Doc) -> list[str]:
    sc = c.get("securityContext") or {}
    problems = []
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    if "ALL" not in (sc.get("capabilities") or {}).get("drop", []):
        problems.append("capabilities do not drop ALL")
    if sc.get("privileged"):
        problems.append("is privileged")
    return problems


def security(docs: list[Doc]) -> list[Finding]:
    out = []
    for where, template in pod_templates(docs):
        spec = template.get("spec", {})
        psc = spec.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True:
            out.append(Finding("security", where, "pod securityContext.runAsNonRoot is not true"))
        if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            out.append(Finding("security", where, "pod seccompProfile is not RuntimeDefault"))
        if spec.get("automountServiceAccountToken") is not False:
            out.append(
                Finding("security", where, "mounts a Kubernetes API token (automountServiceAccountToken)")
            )
        for c in containers(template):
            out += [
                Finding("security", f"{where} container {c.get('name')}", p) for p in _secure_container(c)
            ]
    for rollout, model in _rollouts(docs):
        volumes = {v["name"]: v for v in rollout["spec"]["template"]["spec"].get("volumes", [])}
        mounts = {m["mountPath"]: m["name"] for m in model.get("volumeMounts", [])}
        for path in MODEL_WRITABLE_DIRS:
            name = mounts.get(path)
            if name is None or "emptyDir" not in volumes.get(name, {}):
                out.append(
                    Finding(
                        "security",
                        f"{ref(rollout)} container {MODEL_CONTAINER}",
                        f"{path} is not an emptyDir mount (read-only root filesystem)",
                    )
                )
    return out


def archive_spool(docs: list[Doc]) -> list[Finding]:
    """The model's archive spool is on a volume that outlives the pod: a mount of a PersistentVolumeClaim
    the manifests create, ReadWriteMany (every pod of the Rollout, both colours, mounts it; a new pod adopts
    a gone pod's folder). An emptyDir there loses answered uploads at each scale-down or eviction."""
    out = []
    claims = {c["metadata"]["name"]: c for c in of_kind(docs, "PersistentVolumeClaim")}
    for rollout, model in _rollouts(docs):
        where = f"{ref(rollout)} container {MODEL_CONTAINER}"
        spool = str(SPOOL_DIR)  # where serving spools (serving/archive.py)
        volumes = {v["name"]: v for v in rollout["spec"]["template"]["spec"].get("volumes", [])}
        mount = next((m for m in model.get("volumeMounts", []) if m.get("mountPath") == spool), None)
        claim_name = ((volumes.get(mount["name"]) if mount else None) or {}).get("persistentVolumeClaim", {})
        claim = claims.get(claim_name.get("claimName", ""))
        if claim is None:
            out.append(
                Finding(
                    "archive",
                    where,
                    f"{spool} is not a mount of a PersistentVolumeClaim the manifests create",
                )
            )
        elif "ReadWriteMany" not in claim["spec"].get("accessModes", []):
            out.append(
                Finding(
                    "archive", ref(claim), "is not ReadWriteMany (both colours and a new pod mount the spool)"
                )
            )
    return out


def archive_uploader(docs: list[Doc]) -> list[Finding]:
    """The model pod's archive uploader (serving/uploader.py): the server only writes the spool, so without
    it nothing is archived. A native sidecar (an initContainer with restartPolicy Always: started before
    the model, stopped after it, so it drains last), `python -m serving.uploader` in the model's image, the
    model's three VAULT_* values and Vault token mount, the model's spool volume at SPOOL_DIR, no port."""
    out = []
    for rollout, model in _rollouts(docs):
        spec = rollout["spec"]["template"]["spec"]
        where = f"{ref(rollout)} initContainer {UPLOADER_CONTAINER}"
        up = next((c for c in spec.get("initContainers", []) if c.get("name") == UPLOADER_CONTAINER), None)
        if up is None:
            out.append(
                Finding(
                    "archive", ref(rollout), f"has no initContainer {UPLOADER_CONTAINER!r} (the uploader)"
                )
            )
            continue
        problems = []
        if up.get("restartPolicy") != "Always":
            problems.append(
                "is not a native sidecar (restartPolicy: Always); the pod would wait for it to exit"
            )
        if up.get("image") != model.get("image"):
            problems.append(f"image {up.get('image')!r} is not the model's {model.get('image')!r}")
        if list(up.get("command", [])) + list(up.get("args", [])) != UPLOADER_COMMAND:
            problems.append(f"does not run {' '.join(UPLOADER_COMMAND)}")
        for name in sorted(VAULT_ENV):
            if _env_value(up, name) != _env_value(model, name):
                problems.append(
                    f"{name} is {_env_value(up, name)!r}, the model's is {_env_value(model, name)!r}"
                )
        model_mounts = {m.get("mountPath"): m.get("name") for m in model.get("volumeMounts", [])}
        up_mounts = {m.get("mountPath"): m.get("name") for m in up.get("volumeMounts", [])}
        for path in (str(SPOOL_DIR), str(Path(DEFAULT_TOKEN_PATH).parent)):
            if up_mounts.get(path) is None or up_mounts.get(path) != model_mounts.get(path):
                problems.append(f"does not mount the model's volume at {path}")
        if up.get("ports"):
            problems.append("declares ports; it serves nothing")
        out += [Finding("archive", where, p) for p in problems]
    return out


def gate_job(docs: list[Doc]) -> list[Finding]:
    """The gate's Job: no retries (a second run could pass a flaky model), a deadline, the preview URL."""
    out = []
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    templates = {t["metadata"]["name"]: t for t in of_kind(docs, "AnalysisTemplate")}
    for rollout in of_kind(docs, "Rollout"):
        bg = rollout["spec"].get("strategy", {}).get("blueGreen", {})
        pre = bg.get("prePromotionAnalysis") or {}
        for entry in pre.get("templates", []):
            template = templates.get(entry.get("templateName"))
            if template is None:
                continue  # analysis_references reports it
            jobs = [m for m in template["spec"].get("metrics", []) if "job" in m.get("provider", {})]
            if not jobs:
                out.append(Finding("gate", ref(template), "runs no Job: the load test is a Job metric"))
            for metric in jobs:
                where = f"{ref(template)} metric {metric.get('name')}"
                spec = metric["provider"]["job"]["spec"]
                if spec.get("backoffLimit") != 0:
                    out.append(
                        Finding("gate", where, "backoffLimit is not 0: a failed gate must not be retried")
                    )
                if (
                    not isinstance(spec.get("activeDeadlineSeconds"), int)
                    or spec["activeDeadlineSeconds"] <= 0
                ):
                    out.append(
                        Finding("gate", where, "has no activeDeadlineSeconds: a hung gate blocks the rollout")
                    )
                if spec.get("template", {}).get("spec", {}).get("restartPolicy") != "Never":
                    out.append(Finding("gate", where, "restartPolicy is not Never"))
                if "{{args.preview-url}}" not in repr(spec):
                    out.append(Finding("gate", where, "does not target {{args.preview-url}}"))
        url = next((a.get("value") for a in pre.get("args", []) if a.get("name") == "preview-url"), None)
        if url is None:
            continue
        parts = urlsplit(url)
        preview = services.get(bg.get("previewService", ""), {})
        want_host = f"{bg.get('previewService')}.{rollout['metadata'].get('namespace')}.svc.cluster.local"
        ports = {p.get("port") for p in preview.get("spec", {}).get("ports", [])}
        if parts.hostname != want_host or parts.port not in ports:
            out.append(
                Finding(
                    "gate",
                    ref(rollout),
                    f"preview-url {url!r} is not the preview Service "
                    f"({want_host} on one of ports {sorted(ports)})",
                )
            )
    return out


def stack_sizes(docs: list[Doc], pool: GpuPool, replicas: int, gpus_per_pod: int) -> list[Finding]:
    """The Rollout asks for what the Pulumi stack sized the GPU pool for (two colours at full replicas)."""
    out = []
    for rollout, model in _rollouts(docs):
        if rollout["spec"].get("replicas") != replicas:
            out.append(
                Finding(
                    "stack",
                    ref(rollout),
                    f"replicas {rollout['spec'].get('replicas')} differ from "
                    f"the stack's modelReplicas {replicas}",
                )
            )
        limit = str(model.get("resources", {}).get("limits", {}).get(pool.resource, ""))
        if limit != str(gpus_per_pod):
            out.append(
                Finding(
                    "stack",
                    ref(rollout),
                    f"{pool.resource} {limit!r} differs from the stack's gpusPerPod {gpus_per_pod}",
                )
            )
    return out


def all_rendered(docs: list[Doc], pool: GpuPool, vault: VaultExpectation) -> list[Finding]:
    """Every check that needs only the rendered objects and the contracts."""
    return [
        *images_pinned(docs),
        *services_select_pods(docs),
        *blue_green(docs),
        *analysis_references(docs),
        *metric_providers(docs),
        *probes(docs),
        *gpu_pool(docs, pool),
        *model_env(docs),
        *vault_identity(docs, vault),
        *security(docs),
        *gate_job(docs),
        *archive_spool(docs),
        *archive_uploader(docs),
    ]


def metric_providers(docs: list[Doc]) -> list[Finding]:
    """One provider per metric: Argo Rollouts refuses a metric with two (a transformer can add one)."""
    out = []
    for template in of_kind(docs, "AnalysisTemplate"):
        for metric in template["spec"].get("metrics", []):
            providers = sorted(metric.get("provider", {}))
            if len(providers) != 1:
                out.append(
                    Finding(
                        "analysis-args",
                        f"{ref(template)} metric {metric.get('name')}",
                        f"has {len(providers)} providers {providers}; exactly one is allowed",
                    )
                )
    return out


def gate_thresholds(docs: list[Doc], env: str) -> list[Finding]:
    """Each environment's gate judges with that environment's SLOs (a staging gate in production is drift
    the allowlist would permit, so it is checked by value here)."""
    out = []
    for template in of_kind(docs, "AnalysisTemplate"):
        for arg in template["spec"].get("args", []):
            if arg.get("name") == "thresholds" and arg.get("value") != env:
                out.append(
                    Finding("gate", ref(template), f"thresholds {arg.get('value')!r} are not {env!r}'s")
                )
    return out
