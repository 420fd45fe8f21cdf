"""The RENDERED pod specs, run: the Rollout's pod template and the gate Job's pod with `podman kube play`.

The images are the session's (tests/e2e/test_image_delivery.py's fixtures, imported: the trained model's
Bento, built once and pushed to the loopback registry); kube play pulls them by digest (tls off). The pod is
ci/kube_play.py's translation of `spira manifests render local`: every field the manifest has (env,
securityContext, probes, emptyDirs, read-only root, uid 10001) except the GPU scheduling fields and the
few podman-only replacements listed there. The model pod logs in to the stack's OpenBao over TLS with the
CA beside its token (as the cluster projects the ConfigMap vault-ca) and must answer its readiness path; a
pod without that CA must not become ready and must say where the CA should be, in one log line. The gate's
pod must exit 0 against it with the right model version and 1 with a wrong one.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ci.base_image import ensure_infra
from ci.ephemeral import TOKEN_DIR, free_port, http_ready, write_token
from ci.kube_play import container_name, down, gate_pod, model_pod, play, wait_exit
from ci.podman import Podman
from ci.preview import play_preview, stop_preview
from infra.vault import clients
from spira.manifests.render import render_docs
from spira.stack import StackInfo
from spira.stack.net import http_status
from spira_core.vault.settings import vault_ca_path
from tests.e2e.test_image_delivery import bento, images, podman, registry, version  # noqa: F401 (fixtures)
from tests.fixtures.model import get_json

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


def run_gate(
    kube: Podman,
    docs,
    images,  # noqa: F811
    url: str,
    model_version: str,
    stack: StackInfo,
    token_dir: Path,
) -> tuple[int, str]:
    # the gate's projected token (its own service account) and Vault's CA, as the kubelet would mount them
    write_token(token_dir, stack.mint_jwt(clients.CLIENTS["gate"].subject, ttl_s=3600), ca=stack.vault_ca)
    pod, dropped, job = gate_pod(
        docs,
        name=f"spira-kp-gate-{uuid.uuid4().hex[:8]}",
        image=images["loadtest"][1].ref,
        args={"preview-url": url, "model-version": model_version},
        token_dir=str(token_dir),
        vault_port=urlsplit(stack.vault_addr).port,
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
    assert env["VAULT_ADDR"] == local_stack.vault_addr and env["VAULT_ADDR"].startswith("https://")
    assert not any(k.startswith("VAULT_JWT") for k in env), "only the manifest's env, no local signer"
    mounts = {m["Destination"]: m for m in inspect["Mounts"]}
    assert {"/home/bentoml", "/tmp", "/var/run/secrets/vault"} <= set(mounts)
    assert mounts["/var/run/secrets/vault"]["RW"] is False
    # The root filesystem is read-only for uid 10001; the emptyDirs are writable.
    assert kube("exec", name, "touch", "/opt/x", check=False).returncode != 0
    kube("exec", name, "touch", "/tmp/x", "/home/bentoml/x")
    assert http_ready(model_running["url"] + "/readyz")
    # Logged in over TLS, trusting the CA beside the token: the secret was read and is fresh.
    ca = str(vault_ca_path(Path(TOKEN_DIR) / "token"))
    assert kube.text("exec", name, "cat", ca) == local_stack.vault_ca.read_text().strip()
    secret = get_json(model_running["url"] + "/info")["readiness"]["secret"]
    assert secret["version"] is not None and not secret["stale"], secret
    # The archive's uploader, the Rollout's native sidecar, runs beside it: same image, uid, read-only root.
    uploader = json.loads(kube.text("inspect", container_name(model_running["pod"], "uploader")))[0]
    assert uploader["State"]["Status"] == "running", logs(kube, uploader["Name"])
    assert uploader["Config"]["User"] == "10001:10001" and uploader["HostConfig"]["ReadonlyRootfs"] is True
    assert uploader["Image"] == inspect["Image"]


def test_a_model_pod_without_the_vault_ca_is_not_ready_and_logs_the_ca_path_once(
    podman: Podman,  # noqa: F811
    kube: Podman,
    images,  # noqa: F811
    docs,
    local_stack: StackInfo,
):
    image = images["model"][1].ref
    podman("pull", "-q", "--tls-verify=false", image, timeout=1800)
    cmd = json.loads(kube.text("image", "inspect", "--format", "{{json .Config.Cmd}}", image))
    with tempfile.TemporaryDirectory(prefix="spira-kp-noca-") as tmp:
        token_dir = Path(tmp) / "vault"
        write_token(token_dir, local_stack.service_jwt("serving"), ca=None)  # the ConfigMap is missing
        port = free_port()
        pod, _ = model_pod(
            docs,
            name=f"spira-kp-noca-{uuid.uuid4().hex[:8]}",
            image=image,
            image_cmd=cmd,
            port=port,
            token_dir=str(token_dir),
            vault_port=urlsplit(local_stack.vault_addr).port,
        )
        name, url = container_name(pod, "model"), f"http://127.0.0.1:{port}"
        line = f"the Vault CA {vault_ca_path(Path(TOKEN_DIR) / 'token')} does not exist"
        play(kube, pod)
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and http_status(url + "/livez") != 200:
                assert kube.text("inspect", "--format", "{{.State.Status}}", name) == "running", logs(
                    kube, name
                )
                time.sleep(1)
            for _ in range(5):  # up, and stays unready across several refresh attempts
                assert http_status(url + "/livez") == 200
                assert http_status(url + "/readyz") == 503
                time.sleep(1)
            proc = kube("logs", name, check=False)
            everything = ((proc.stdout or b"") + (proc.stderr or b"")).decode(errors="replace")
            logged = [entry for entry in everything.splitlines() if line in entry]
            assert len(logged) == 1, everything[-3000:]
        finally:
            down(kube, pod)


def test_the_gate_job_pod_passes_the_good_model(
    kube: Podman,
    model_running,
    docs,
    images,  # noqa: F811
    version,  # noqa: F811
    local_stack: StackInfo,
    tmp_path: Path,
):
    # Argo passes the Rollout's spira.dev/model-version annotation, which the release tooling writes with the
    # digest; here that is the version the image was built with.
    assert version == images["model"][0].labels["dev.spira.model-version"]
    code, out = run_gate(kube, docs, images, model_running["url"], version, local_stack, tmp_path / "vault")
    assert code == 0, out


def test_the_gate_job_pod_fails_a_wrong_model_version(
    kube: Podman,
    model_running,
    docs,
    images,  # noqa: F811
    local_stack: StackInfo,
    tmp_path: Path,
):
    code, out = run_gate(kube, docs, images, model_running["url"], "999", local_stack, tmp_path / "vault")
    assert code == 1, out


def freeze_into_store(stack: StackInfo, root: Path) -> str:
    """A small frozen holdout under holdout/<version>/ of the stack's features bucket (CURRENT unmoved)."""
    from spira_core.settings import service_secret
    from tests.unit.training.conftest import write_dataset
    from training import holdout as training_holdout

    data = write_dataset(root / "data", n_per_class=6)
    frozen = training_holdout.freeze(data.dataset_csv, data.noise_csv)
    bucket = service_secret("gate", stack.service_env("gate"))["features_bucket"]
    folder = f"holdout/{frozen.holdout.version}-{uuid.uuid4().hex[:6]}/"
    for rel, body in frozen.files.items():
        stack.s3_client().put_object(Bucket=bucket, Key=folder + rel, Body=body)
    return f"s3://{bucket}/{folder}"


def run_clinical_gate(
    kube: Podman,
    docs,
    image: str,
    url: str,
    baseline_url: str,
    holdout: str,
    stack: StackInfo,
    token_dir: Path,
) -> tuple[int, str]:
    """The rendered clinical-gate Job's pod (the gate image by digest, its own env, read-only root, uid
    10001), with the gate's projected token: its Vault role reads the holdout key, its client role /predict."""
    write_token(token_dir, stack.mint_jwt(clients.CLIENTS["gate"].subject, ttl_s=3600), ca=stack.vault_ca)
    pod, dropped, job = gate_pod(
        docs,
        name=f"spira-kp-clinical-{uuid.uuid4().hex[:8]}",
        image=image,
        args={"preview-url": url, "active-url": baseline_url, "holdout": holdout},
        token_dir=str(token_dir),
        vault_port=urlsplit(stack.vault_addr).port,
        template_name="spira-clinical-gate",
        metric="clinical",
        container="clinical-gate",
    )
    assert dropped == []
    name = container_name(pod, "clinical-gate")
    try:
        play(kube, pod)
        code = wait_exit(kube, name, job["activeDeadlineSeconds"])
        return code, logs(kube, name)
    finally:
        down(kube, pod)


def test_the_clinical_gate_job_pod_passes_the_served_model_judged_against_itself_on_the_stores_holdout(
    kube: Podman,
    model_running,
    docs,
    images,  # noqa: F811
    local_stack: StackInfo,
    tmp_path: Path,
):
    holdout = freeze_into_store(local_stack, tmp_path)
    url = model_running["url"]
    code, out = run_clinical_gate(
        kube, docs, images["loadtest"][1].ref, url, url, holdout, local_stack, tmp_path / "vault"
    )
    assert code == 0, out
    assert "clinical gate: PASS" in out and holdout.split("/")[-2].split("-")[0] in out, out
