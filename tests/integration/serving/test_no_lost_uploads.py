"""No lost uploads: a pod's server and its archive uploader killed (SIGKILL) while uploads flow and the
object store is down, a new pod (server + uploader) on the same durable spool, the store back: every upload
that was answered 200 is in the archive."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import signal
import threading
import time
import urllib.error

import pytest

from infra.vault import layout
from spira.stack import LocalStack, StackInfo
from spira.stack.net import http_status, wait_until
from tests.contract.test_http_contract import _post
from tests.fakes.serving import wav_bytes
from tests.fixtures.model import (
    RegisteredModel,
    ServedModel,
    second_server_home,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.integration


def _archived_audio_hashes(s3, bucket: str, skip: set[str]) -> tuple[set[str], set[str]]:
    """sha256 of every archived upload's audio not in `skip`, and every key seen (to skip next time)."""
    keys = {
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="uploads/")
        for o in page.get("Contents", [])
    }
    hashes = {
        hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()
        for key in keys - skip
        if key.endswith(".audio")
    }
    return hashes, keys


def _kill_everything(pid: int) -> None:
    """SIGKILL the server and every process under it, as the kernel does to a container's cgroup: BentoML
    starts its worker in a session of its own, which a kill of the server's process group would miss
    (the worker then keeps serving on the inherited socket)."""
    import psutil

    server = psutil.Process(pid)
    processes = [server, *server.children(recursive=True)]
    for proc in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert not alive, f"still running after SIGKILL: {alive}"


class _Uploads:
    """Posts distinct clips one after another from a thread; keeps the sha256 of each answered 200."""

    def __init__(self, url: str, first_seed: int) -> None:
        self.url, self.seed = url, first_seed
        self.answered: set[str] = set()
        self.failed_connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            clip = wav_bytes(2.5, seed=self.seed)
            self.seed += 1
            try:
                status, _ = _post(f"{self.url}/predict", [("audio", "p.wav", clip)])
            except (urllib.error.URLError, ConnectionError, OSError):
                self.failed_connections += 1  # killed mid-request: never answered, so never promised
                time.sleep(0.05)
                continue
            if status == 200:
                self.answered.add(hashlib.sha256(clip).hexdigest())

    def __enter__(self) -> _Uploads:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(90)


def test_every_answered_upload_is_archived_after_a_kill_during_an_object_store_outage(
    local_stack: StackInfo,
    local_stack_handle: LocalStack,
    registered_model: RegisteredModel,
    served_model: ServedModel,
) -> None:
    kv, path = local_stack.vault_client().secrets.kv.v2, layout.secret_path("local", "serving")
    secret = kv.read_secret_version(path=path, mount_point="secret", raise_on_deleted_version=True)["data"][
        "data"
    ]
    # the operator's setting, as in a cluster: a pod gone for 3 s is adopted (the servers read it at start)
    kv.patch(path=path, secret={"archive_orphan_after_s": "3"}, mount_point="secret")
    bucket, s3_admin = secret["archive_bucket"], local_stack.s3_client()
    _, before = _archived_audio_hashes(s3_admin, bucket, skip=set())
    home = second_server_home(served_model)
    spool = home / "durable-spool"  # the volume both "pods" mount
    pod = {"SPIRA_ARCHIVE_SPOOL": str(spool)}  # the volume's mount, local only (a pod spools at SPOOL_DIR)
    first = start_server(local_stack, registered_model, home, extra_env={**pod, "HOSTNAME": "spira-a"})
    seaweed = local_stack_handle.s3.process()
    second = None
    try:
        seaweed.stop()  # the object store is down from here on
        with _Uploads(first.url, first_seed=10_000) as flow:
            assert wait_until(lambda: len(flow.answered) >= 12, 120), "uploads were not answered"
            # the pod's cgroup: the server and its uploader sidecar, no shutdown hook, no drain: the spool remains
            uploader = first.server.uploader
            assert uploader is not None and uploader.pid() is not None, "no uploader beside the server"
            _kill_everything(uploader.pid())
            _kill_everything(first.pid)
            time.sleep(1.0)
        killed_answered = set(flow.answered)
        assert http_status(f"{first.url}/livez") is None, "the killed server still answers"
        assert len(list((spool / "spira-a").glob("*.spool"))) >= len(killed_answered)

        # a new pod on the same volume (another name, as a rescheduled pod has); still no object store
        second = start_server(local_stack, registered_model, home, extra_env={**pod, "HOSTNAME": "spira-b"})
        with _Uploads(second.url, first_seed=20_000) as flow2:
            assert wait_until(lambda: len(flow2.answered) >= 3, 60)
        answered = killed_answered | flow2.answered
        assert not (spool / "spira-a").exists(), "the gone pod's spool was not adopted"

        seaweed.start()
        assert wait_until(local_stack_handle.s3.healthy, 90), "SeaweedFS did not come back"
        archived: set[str] = set()
        seen = set(before)

        def all_archived() -> bool:
            try:
                hashes, keys = _archived_audio_hashes(s3_admin, bucket, skip=seen)
            except Exception:  # SeaweedFS lists before its volume server answers reads again
                return False
            archived.update(hashes)
            seen.update(keys)  # hashed now: not downloaded again
            return answered <= archived

        assert wait_until(all_archived, 180, interval_s=2), (
            f"{len(answered - archived)} of {len(answered)} answered uploads missing from the archive"
        )
        stop_server(second)  # SIGTERM to the server, then to its uploader: the bounded drain
        assert second.server.uploader is not None
        log = second.server.uploader.log_path.read_text(errors="replace")
        assert "drained" in log and "0 left on the spool" in log, log[-3000:]
        second = None
    finally:
        if not local_stack_handle.s3.answering():
            seaweed.start()
            wait_until(local_stack_handle.s3.healthy, 90)
        first.server.stop()  # clears the killed server's and uploader's pid files
        if second is not None:
            stop_server(second)
        shutil.rmtree(home, ignore_errors=True)
        current = kv.read_secret_version(path=path, mount_point="secret", raise_on_deleted_version=True)
        data = {k: v for k, v in current["data"]["data"].items() if k != "archive_orphan_after_s"}
        kv.create_or_update_secret(path=path, secret=data, mount_point="secret")
