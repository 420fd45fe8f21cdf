"""The RENDERED queue worker pod, run: the Rollout spira-worker's pod template (its own command, env,
securityContext, emptyDir and Vault token volume) with `podman kube play`, from the model image by digest
(tests/e2e/test_image_delivery.py's session build), against the local stack: it logs in to OpenBao as the
worker, reads NATS and the archive from its secret, consumes a job published to the stack's JetStream and
stores its result. ci/kube_play.py's worker_pod drops only the GPU scheduling fields."""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import soundfile as sf

from ci.ephemeral import write_token
from ci.kube_play import container_name, down, play, worker_pod
from ci.podman import Podman
from spira.manifests.render import render_docs
from spira.stack import StackInfo
from spira_core.objects import S3Recordings
from spira_core.queue import DONE, Job, QueueNames
from spira_core.queue.nats import NatsJobQueue
from spira_core.settings import cached_service_secret
from tests.e2e.test_image_delivery import bento, images, podman, registry, version  # noqa: F401 (fixtures)
from tests.e2e.test_pod_spec import kube, logs  # noqa: F401 (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.container, pytest.mark.slow]


def _clip() -> bytes:
    rate = 48_000
    t = np.arange(int(rate * 4.2)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) + 0.02 * np.random.default_rng(7).standard_normal(len(t))
    out = io.BytesIO()
    sf.write(out, tone.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


async def _publish_and_wait(stack: StackInfo, job: Job, names: QueueNames, timeout_s: float):
    queue = await NatsJobQueue.connect(str(stack.nats_url), names, "e2e-submit")
    try:
        await queue.enqueue(job)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = await queue.state(job.job_id)
            if state is not None and state.status == DONE:
                return state
            await asyncio.sleep(1.0)
        return await queue.state(job.job_id)
    finally:
        await queue.close()


def test_the_rendered_worker_pod_consumes_a_job_from_the_stacks_jetstream(
    kube: Podman,  # noqa: F811
    images,  # noqa: F811
    version: str,  # noqa: F811
    local_stack: StackInfo,
):
    docs = render_docs("local")
    intake = cached_service_secret(local_stack.service_env("intake"))
    names = QueueNames.from_secret(intake.get()["queue"])
    data = _clip()
    job = Job.of_upload(names, data, f"e2e-worker-{uuid.uuid4().hex[:8]}")
    S3Recordings(intake).put(job.object_key, data)  # as the intake stores an accepted upload
    with tempfile.TemporaryDirectory(prefix="spira-kp-worker-") as tmp:
        token_dir = Path(tmp) / "vault"
        write_token(token_dir, local_stack.service_jwt("worker"), ca=local_stack.vault_ca)
        pod, dropped = worker_pod(
            docs,
            name=f"spira-kp-worker-{uuid.uuid4().hex[:8]}",
            image=images["model"][1].ref,
            token_dir=str(token_dir),
            vault_port=urlsplit(local_stack.vault_addr).port,
        )
        assert sorted(dropped) == [
            "containers[worker].resources.limits.nvidia.com/gpu",
            "containers[worker].resources.requests.nvidia.com/gpu",
            "spec.nodeSelector",
            "spec.tolerations",
        ]
        name = container_name(pod, "worker")
        try:
            play(kube, pod)
            state = asyncio.run(_publish_and_wait(local_stack, job, names, timeout_s=300))
            assert state is not None and state.status == DONE, logs(kube, name)
            assert state.result["model_version"] == version and state.result["windows"] >= 1
            inspect = json.loads(kube.text("inspect", name))[0]
            env = {e.split("=", 1)[0] for e in inspect["Config"]["Env"]}
            assert {k for k in env if k.startswith("VAULT")} == {
                "VAULT_ADDR",
                "VAULT_ROLE",
                "VAULT_SECRET_PATH",
            }
            assert (
                inspect["Config"]["User"] == "10001:10001" and inspect["HostConfig"]["ReadonlyRootfs"] is True
            )
        finally:
            down(kube, pod)
