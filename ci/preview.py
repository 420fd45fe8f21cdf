"""The blue/green "preview" on one machine: the RENDERED Rollout pod, played by podman, by digest.

What Argo Rollouts would start as the preview ReplicaSet, minus what only a cluster has (ci/kube_play.py
lists every translated field). The pod stays up after `play_preview` returns, as a preview does until the
gate decides; `stop_preview` removes it. The pod runs exactly what the image ships: a deliberately bad
candidate (the demo's `--degrade`) is made by a fault proxy in front of it (spira/faults.py), not here.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ci.base_image import ensure_infra
from ci.ephemeral import free_port, http_ready, write_token
from ci.kube_play import container_name, down, model_pod, play, readiness_path
from ci.podman import Podman

READY_TIMEOUT_S = 240.0


@dataclass(frozen=True)
class Preview:
    pod: str
    url: str
    image: str
    ready_s: float
    container: str  # podman's name for the model container
    changed: list[str] = field(default_factory=list)  # manifest fields podman could not take as written
    spec: dict = field(default_factory=dict, repr=False)  # the Pod document that was played

    def to_json(self) -> str:
        return json.dumps(
            {
                "pod": self.pod,
                "url": self.url,
                "image": self.image,
                "ready_s": self.ready_s,
                "changed": self.changed,
            }
        )


def play_preview(
    podman: Podman,
    stack,
    image: str,
    token_dir: Path,
    overlay: str = "local",
    say=print,
) -> Preview:
    """Play the rendered model pod for `image` against the local stack's Vault (over TLS: the stack's CA
    beside the token, as the cluster projects the ConfigMap vault-ca); wait for its readiness."""
    from spira.manifests.render import render_docs

    kube = podman.with_infra(ensure_infra(podman, say=say))
    podman("pull", "-q", "--tls-verify=false", image, timeout=1800)  # by digest, from the registry
    cmd = json.loads(kube.text("image", "inspect", "--format", "{{json .Config.Cmd}}", image))
    write_token(token_dir, stack.service_jwt("serving", ttl_s=24 * 3600), ca=stack.vault_ca)
    port = free_port()
    pod, changed = model_pod(
        render_docs(overlay),
        name=f"spira-preview-{uuid.uuid4().hex[:8]}",
        image=image,
        image_cmd=cmd,
        port=port,
        token_dir=str(token_dir),
        vault_port=urlsplit(stack.vault_addr).port,
    )
    main = pod["spec"]["containers"][0]
    name = container_name(pod, main["name"])
    url = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    play(kube, pod)
    try:
        while not http_ready(url + readiness_path(pod)):
            state = kube.text("inspect", "--format", "{{.State.Status}}", name)
            if state != "running":
                raise RuntimeError(f"preview {name} is {state} before it became ready:\n{_logs(kube, name)}")
            if time.monotonic() - start > READY_TIMEOUT_S:
                raise TimeoutError(f"preview not ready in {READY_TIMEOUT_S:.0f}s:\n{_logs(kube, name)}")
            time.sleep(1)
    except BaseException:
        down(kube, pod)
        raise
    return Preview(
        pod["metadata"]["name"], url, image, round(time.monotonic() - start, 1), name, changed, pod
    )


def stop_preview(podman: Podman, pod_name: str) -> None:
    down(podman, {"metadata": {"name": pod_name}})


def _logs(podman: Podman, name: str) -> str:
    proc = podman("logs", name, check=False)
    return ((proc.stdout or b"") + (proc.stderr or b"")).decode(errors="replace")[-3000:]
