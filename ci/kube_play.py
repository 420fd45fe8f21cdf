"""The RENDERED manifests as `podman kube play` Pods: the Rollout's pod template and the gate Job's pod.

Pure functions from rendered documents to Pod documents; the only I/O is in `play`/`down`/`wait_exit`.
Podman is not a kubelet, so a few fields are translated and exactly these are changed; everything else
(env, securityContext, probes, volumes and mounts, ports' names, labels, annotations) is the rendered
manifest's, unchanged:

- DROPPED: the GPU resource (`nvidia.com/gpu` in requests and limits), `nodeSelector` and `tolerations`.
  They schedule the pod onto the GPU pool; a CPU host has no such resource, node or taint.
- REPLACED: the image by the pushed `name@sha256:` reference the test built (the rendered digest is the
  one the release tooling wrote, not the one under test); the projected volume (serviceAccountToken and
  the ConfigMap vault-ca) by a hostPath directory holding a minted token and the stack's CA as ca.crt,
  the two files the cluster projects (only a kubelet can project a token); the archive spool's
  PersistentVolumeClaim by an emptyDir (one local pod; the durable spool shared by pods is the cluster's);
  `{{args.*}}` in the gate by values.
- HOST NETWORK: these hosts have no bridge or slirp networking, so the pod joins the host network, where
  every pod shares the port space: the model listens on a free port (the image's own CMD with another
  `--port`, as ci/ephemeral.py does), and VAULT_ADDR keeps its scheme, host and path but gets the port of
  the test's Vault (the rendered local value is https://127.0.0.1:8200). podman 4.3 turns every
  containerPort into a host port mapping, which host networking refuses, so the model's `ports` list is
  dropped too (the probes keep `port: http` unchanged; podman cannot resolve it, see model_pod).
- SIDECARS MOVED: podman 4.3 has no native sidecars (it would run an initContainer with `restartPolicy:
  Always` to completion before the pod starts, and the archive's uploader never completes), so such an
  initContainer becomes an ordinary container after the model, without `restartPolicy`; its image and
  VAULT_ADDR port are replaced as the model's are, its command, env, mounts and securityContext kept.
- PLAIN HTTP: the local stack serves /predict in clear text (docs/security.md), so the model pod's TLS is
  taken out: the BENTOML_CONFIG_OPTIONS variable that turns it on, the volume of the Certificate's Secret
  (cert-manager's, which only a cluster has) and its mount, and the probes' `scheme: HTTPS`. The same
  settings run with a certificate from the stack's CA in tests/integration/serving/test_predict_tls.py.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from ci.ephemeral import MODEL_PORT, TOKEN_DIR, command_on_port
from ci.podman import Podman
from spira_core.tls import BENTOML_OVERRIDE_ENV, SERVING_TLS_DIR
from spira_core.vault.settings import CA_FILE_NAME

Doc = dict[str, Any]

GPU_RESOURCE = "nvidia.com/gpu"
# What podman cannot apply on a CPU host (see the module docstring); the unit tests pin this list.
DROPPED_POD_FIELDS = ("nodeSelector", "tolerations")
PLACEHOLDER = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")


class KubePlayError(ValueError):
    """The rendered manifests are not what this translation expects."""


def find(docs: Sequence[Doc], kind: str, name: str) -> Doc:
    for doc in docs:
        if doc.get("kind") == kind and doc.get("metadata", {}).get("name") == name:
            return doc
    raise KubePlayError(f"no {kind}/{name} in the rendered documents")


def _drop_gpu(spec: Doc) -> list[str]:
    """Remove the GPU scheduling fields; return what was removed (dotted paths)."""
    dropped = []
    for key in DROPPED_POD_FIELDS:
        if spec.pop(key, None) is not None:
            dropped.append(f"spec.{key}")
    for container in spec.get("containers", []):
        for part in ("requests", "limits"):
            block = container.get("resources", {}).get(part, {})
            if block.pop(GPU_RESOURCE, None) is not None:
                dropped.append(f"containers[{container['name']}].resources.{part}.{GPU_RESOURCE}")
    return dropped


def _container(spec: Doc, name: str) -> Doc:
    for container in spec.get("containers", []):
        if container.get("name") == name:
            return container
    raise KubePlayError(f"no container {name!r} in the pod template")


def _pod(name: str, template: Doc, spec: Doc) -> Doc:
    meta = template.get("metadata", {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": dict(meta.get("labels", {})),
            "annotations": dict(meta.get("annotations", {})),
        },
        "spec": spec,
    }


def _plain_http(spec: Doc, main: Doc, container: str) -> list[str]:
    """Take the serving TLS out of the model container (module docstring); return what was removed."""
    dropped = []
    env = main.get("env", [])
    if any(e.get("name") == BENTOML_OVERRIDE_ENV for e in env):
        main["env"] = [e for e in env if e.get("name") != BENTOML_OVERRIDE_ENV]
        dropped.append(f"containers[{container}].env[{BENTOML_OVERRIDE_ENV}] (TLS; plain HTTP here)")
    tls_mounts = [m for m in main.get("volumeMounts", []) if m.get("mountPath") == SERVING_TLS_DIR]
    for mount in tls_mounts:
        main["volumeMounts"].remove(mount)
        spec["volumes"] = [v for v in spec.get("volumes", []) if v.get("name") != mount["name"]]
        dropped.append(f"volumes[{mount['name']}] and its mount (the Certificate's Secret)")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = main.get(probe, {}).get("httpGet", {})
        if get.pop("scheme", "HTTP") == "HTTPS":
            dropped.append(f"containers[{container}].{probe}.httpGet.scheme")
    return dropped


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    if not parts.hostname:
        raise KubePlayError(f"not a URL with a host: {url!r}")
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))


def _local_vault(spec: Doc, main: Doc, token_dir: str, vault_port: int, token_volume: str) -> None:
    """The container's VAULT_ADDR on the local Vault's port, and its projected token volume (the token and
    Vault's CA beside it, mounted at TOKEN_DIR) a hostPath directory holding the same two files."""
    for var in main.get("env", []):
        if var.get("name") == "VAULT_ADDR":
            var["value"] = with_port(var["value"], vault_port)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    token = volumes.get(token_volume)
    sources = (token or {}).get("projected", {}).get("sources", [])
    if not any("serviceAccountToken" in s for s in sources):
        raise KubePlayError(f"volume {token_volume!r} is not a projected serviceAccountToken")
    ca_items = [i for s in sources for i in (s.get("configMap") or {}).get("items", [])]
    if not any(i.get("path") == CA_FILE_NAME for i in ca_items):
        raise KubePlayError(
            f"volume {token_volume!r} projects no {CA_FILE_NAME} (Vault's CA) beside the token"
        )
    mounts = [m for m in main.get("volumeMounts", []) if m.get("name") == token_volume]
    if [m["mountPath"] for m in mounts] != [TOKEN_DIR]:
        raise KubePlayError(f"the token volume is not mounted at {TOKEN_DIR}")
    token.pop("projected")
    token["hostPath"] = {"path": str(token_dir), "type": "Directory"}


def _sidecars_as_containers(spec: Doc, image: str, vault_port: int) -> list[str]:
    """Native sidecars (initContainers with restartPolicy Always) appended to the containers (module
    docstring); return what was changed."""
    changed = []
    init = spec.get("initContainers", [])
    for sidecar in [c for c in init if c.get("restartPolicy") == "Always"]:
        init.remove(sidecar)
        sidecar.pop("restartPolicy")
        sidecar["image"] = image
        for var in sidecar.get("env", []):
            if var.get("name") == "VAULT_ADDR":
                var["value"] = with_port(var["value"], vault_port)
        spec["containers"].append(sidecar)
        changed.append(f"initContainers[{sidecar['name']}] (a native sidecar) -> containers")
    if not init:
        spec.pop("initContainers", None)
    return changed


def model_pod(
    docs: Sequence[Doc],
    *,
    name: str,
    image: str,
    image_cmd: Sequence[str],
    port: int,
    token_dir: str,
    vault_port: int,
    rollout: str = "spira-model",
    container: str = "model",
    token_volume: str = "vault-token",
) -> tuple[Doc, list[str]]:
    """The Rollout's pod template as a Pod for `podman kube play`, and the paths of the dropped fields."""
    template = copy.deepcopy(find(docs, "Rollout", rollout)["spec"]["template"])
    spec = template["spec"]
    dropped = _drop_gpu(spec)
    spec["hostNetwork"] = True  # no pod network on these hosts (module docstring)
    main = _container(spec, container)
    if "@sha256:" not in image:
        raise KubePlayError(f"run the pushed image by digest, not {image!r}")
    main["image"] = image
    http = [p for p in main.get("ports", []) if p.get("name") == "http"]
    if len(http) != 1:
        raise KubePlayError("the model container declares no single port named http")
    # podman 4.3 publishes every containerPort as a host port, which host networking refuses ("PortMappings
    # can only be used with Bridge or slirp4netns networking"): the ports list goes, the server listens on
    # `port` through its own --port. Probes keep `port: http` unchanged (podman 4.3 cannot resolve a named
    # port and, without systemd, runs no healthchecks; the test polls the readiness path itself).
    if http[0].get("containerPort") != MODEL_PORT:
        raise KubePlayError(f"the http port is not the image's {MODEL_PORT}")
    main.pop("ports")
    dropped.append(f"containers[{container}].ports")
    # No command/args in the manifest: the image's CMD runs; only its --port moves with the containerPort.
    if "command" in main or "args" in main:
        raise KubePlayError("the manifest overrides the image's command; the port move expects it not to")
    main["args"] = command_on_port(list(image_cmd), port)
    _local_vault(spec, main, token_dir, vault_port, token_volume)
    dropped.extend(_plain_http(spec, main, container))
    dropped.extend(_sidecars_as_containers(spec, image, vault_port))
    for volume in spec.get("volumes", []):
        if "persistentVolumeClaim" in volume:
            # the claim is the cluster's (a shared EFS volume); the one local pod spools in its own
            # emptyDir (tests/integration/serving/test_no_lost_uploads.py proves the durable spool)
            volume.pop("persistentVolumeClaim")
            volume["emptyDir"] = {}
            dropped.append(f"volumes[{volume['name']}].persistentVolumeClaim (an emptyDir here)")
    return _pod(name, template, spec), dropped


def worker_pod(
    docs: Sequence[Doc],
    *,
    name: str,
    image: str,
    token_dir: str,
    vault_port: int,
    rollout: str = "spira-worker",
    container: str = "worker",
    token_volume: str = "vault-token",
) -> tuple[Doc, list[str]]:
    """The queue workers' pod template as a Pod for `podman kube play` (the manifest's own command, env,
    securityContext and volumes), and the paths of the dropped fields: the GPU scheduling only."""
    template = copy.deepcopy(find(docs, "Rollout", rollout)["spec"]["template"])
    spec = template["spec"]
    dropped = _drop_gpu(spec)
    spec["hostNetwork"] = True  # no pod network on these hosts (module docstring)
    main = _container(spec, container)
    if "@sha256:" not in image:
        raise KubePlayError(f"run the pushed image by digest, not {image!r}")
    main["image"] = image
    _local_vault(spec, main, token_dir, vault_port, token_volume)
    return _pod(name, template, spec), dropped


def readiness_path(pod: Doc, container: str = "model") -> str:
    """The readinessProbe's httpGet path: what the test polls where a kubelet would."""
    return _container(pod["spec"], container)["readinessProbe"]["httpGet"]["path"]


def substitute(value: Any, args: Mapping[str, str]) -> Any:
    """`{{args.NAME}}` replaced everywhere in strings; an unknown name is an error, as in Argo."""
    if isinstance(value, str):

        def one(match: re.Match) -> str:
            if match.group(1) not in args:
                raise KubePlayError(f"no value for {match.group(0)}")
            return str(args[match.group(1)])

        return PLACEHOLDER.sub(one, value)
    if isinstance(value, list):
        return [substitute(v, args) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, args) for k, v in value.items()}
    return value


def gate_pod(
    docs: Sequence[Doc],
    *,
    name: str,
    image: str,
    args: Mapping[str, str],
    token_dir: str | None = None,
    vault_port: int | None = None,
    template_name: str = "spira-gate",
    metric: str = "load-test",
    container: str = "gate",
    token_volume: str = "vault-token",
) -> tuple[Doc, list[str], Doc]:
    """The gate metric's Job pod template as a Pod with the AnalysisRun's args substituted (template
    defaults for the ones not given), the dropped fields, and the Job spec (for its deadline). With
    `token_dir` and `vault_port`, its Vault login (its credential for /predict) as the model pod's."""
    template_doc = find(docs, "AnalysisTemplate", template_name)
    values = {a["name"]: a["value"] for a in template_doc["spec"].get("args", []) if "value" in a}
    values.update(args)
    metrics = [m for m in template_doc["spec"]["metrics"] if m["name"] == metric]
    if len(metrics) != 1 or "job" not in metrics[0].get("provider", {}):
        raise KubePlayError(f"no job metric {metric!r} in {template_name}")
    job_spec = copy.deepcopy(metrics[0]["provider"]["job"]["spec"])
    template = substitute(job_spec["template"], values)
    spec = template["spec"]
    dropped = _drop_gpu(spec)
    spec["hostNetwork"] = True
    main = _container(spec, container)
    if "@sha256:" not in image:
        raise KubePlayError(f"run the pushed image by digest, not {image!r}")
    main["image"] = image
    if token_dir is not None and vault_port is not None:
        _local_vault(spec, main, token_dir, vault_port, token_volume)
    return _pod(name, template, spec), dropped, job_spec


def dump(pod: Doc) -> str:
    return yaml.safe_dump(pod, sort_keys=False)


# --- running (I/O) -------------------------------------------------------------------------------------


def play(podman: Podman, pod: Doc, tls_verify: bool = False, timeout: float = 600) -> None:
    """`podman kube play` from stdin; pulls the digest from the registry (Always, as in the manifest)."""
    podman(
        "kube",
        "play",
        f"--tls-verify={str(tls_verify).lower()}",
        "-",
        stdin=dump(pod).encode(),
        timeout=timeout,
    )


def down(podman: Podman, pod: Doc) -> None:
    podman("pod", "rm", "-f", "--ignore", pod["metadata"]["name"], check=False, timeout=120)


def container_name(pod: Doc, container: str) -> str:
    """kube play names a container <pod>-<container>."""
    return f"{pod['metadata']['name']}-{container}"


def wait_exit(podman: Podman, name: str, timeout_s: float) -> int:
    """The container's exit code (what a Job's pod reports), or TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = podman.text("inspect", "--format", "{{.State.Status}}", name)
        if state in {"exited", "stopped"}:
            return int(podman.text("inspect", "--format", "{{.State.ExitCode}}", name))
        time.sleep(1)
    raise TimeoutError(f"{name} still running after {timeout_s:.0f}s")
