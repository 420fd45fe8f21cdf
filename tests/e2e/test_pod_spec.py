"""The RENDERED pod specs, run: the Rollout's pod template and the gate Job's pod with `podman kube play`.

The images are the session's (tests/e2e/test_image_delivery.py's fixtures, imported: the trained model's
Bento, built once and pushed to the loopback registry); kube play pulls them by digest (tls off). The pod is
ci/kube_play.py's translation of `spira manifests render local`: every field the manifest has (env,
securityContext, probes, emptyDirs, read-only root, uid 10001) except the GPU scheduling fields and the
few podman-only replacements listed there. The model pod must answer its readiness path; the gate's pod
must exit 0 against it with the right model version and 1 with a wrong one.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci.base_image import ensure_infra
from ci.ephemeral import http_ready
from ci.kube_play import container_name, down, gate_pod, play, wait_exit
from ci.podman import Podman
from ci.preview import play_preview, stop_preview
from spira.manifests.render import render_docs
from spira.stack import StackInfo
from tests.e2e.test_image_delivery import bento, images, podman, registry, version  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.container, pytest.mark.slow]


@pytest.fixture(scope="module")
def kube(podman: Podman) -> Podman:  # noqa: F811
    """kube play needs the local infra image (nothing can be pulled for the pod's pause container)."""
    return podman.with_infra(ensure_infra(podman, say=lambda _m: None))


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return render_docs("local")


@pytest.fixture(scope="module")
def model_running(podman: Podman, images, local_stack: StackInfo) -> Iterator[dict]:  # noqa: F811
    """The Rollout's pod, played as `spira image preview` plays it; its URL once the readiness path answers."""
    with tempfile.TemporaryDirectory(prefix="spira-kp-token-") as tmp:
        preview = play_preview(
            podman, local_stack, images["model"][1].ref, Path(tmp) / "vault", say=lambda _m: None
        )
        try:
            yield {
                "pod": preview.spec,
                "dropped": preview.changed,
                "url": preview.url,
                "name": preview.container,
                "ready_s": preview.ready_s,
                "preview": preview,
            }
        finally:
            stop_preview(podman, preview.pod)


def logs(pm: Podman, name: str) -> str:
    proc = pm("logs", name, check=False)
    return ((proc.stdout or b"") + (proc.stderr or b"")).decode(errors="replace")[-3000:]


def run_gate(kube: Podman, docs, images, url: str, model_version: str) -> tuple[int, str]:  # noqa: F811
    pod, dropped, job = gate_pod(
        docs,
        name=f"spira-kp-gate-{uuid.uuid4().hex[:8]}",
        image=images["loadtest"][1].ref,
        args={"preview-url": url, "model-version": model_version},
    )
    assert dropped == []
    name = container_name(pod, "gate")
    try:
        play(kube, pod)
        code = wait_exit(kube, name, job["activeDeadlineSeconds"])
        return code, logs(kube, name)
    finally:
        down(kube, pod)


def test_the_rendered_model_pod_runs_as_the_manifest_says_and_becomes_ready(
    kube: Podman, model_running, docs, local_stack: StackInfo
):
    name = model_running["name"]
    inspect = json.loads(kube.text("inspect", name))[0]
    config, host = inspect["Config"], inspect["HostConfig"]
    assert config["User"] == "10001:10001"
    assert host["ReadonlyRootfs"] is True
    assert "no-new-privileges" in host["SecurityOpt"]
    assert config["Image"] == model_running["pod"]["spec"]["containers"][0]["image"]
    env = dict(e.split("=", 1) for e in config["Env"])
    assert {k: env[k] for k in ("VAULT_ROLE", "VAULT_SECRET_PATH")} == {
        k: v
        for k, v in local_stack.service_env("serving").items()
        if k in ("VAULT_ROLE", "VAULT_SECRET_PATH")
    }, "the rendered local env does not match the stack's Vault layout"
    assert env["VAULT_ADDR"] == local_stack.vault_addr
    assert not any(k.startswith("VAULT_JWT") for k in env), "only the manifest's env, no local signer"
    mounts = {m["Destination"]: m for m in inspect["Mounts"]}
    assert {"/home/bentoml", "/tmp", "/var/run/secrets/vault"} <= set(mounts)
    assert mounts["/var/run/secrets/vault"]["RW"] is False
    # The root filesystem is read-only for uid 10001; the emptyDirs are writable.
    assert kube("exec", name, "touch", "/opt/x", check=False).returncode != 0
    kube("exec", name, "touch", "/tmp/x", "/home/bentoml/x")
    assert http_ready(model_running["url"] + "/readyz")


def test_the_gate_job_pod_passes_the_good_model(kube: Podman, model_running, docs, images, version):  # noqa: F811
    # Argo passes the Rollout's spira.dev/model-version annotation, which the release tooling writes with the
    # digest; here that is the version the image was built with.
    assert version == images["model"][0].labels["dev.spira.model-version"]
    code, out = run_gate(kube, docs, images, model_running["url"], version)
    assert code == 0, out


def test_the_gate_job_pod_fails_a_wrong_model_version(kube: Podman, model_running, docs, images):  # noqa: F811
    code, out = run_gate(kube, docs, images, model_running["url"], "999")
    assert code == 1, out
