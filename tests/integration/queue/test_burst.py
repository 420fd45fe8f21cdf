"""Lossless burst ingestion on real services: NATS JetStream, SeaweedFS, OpenBao and a trained model.

A burst of 2,000 real-shaped recordings (16/44.1/48 kHz, mono and stereo) and 5% malformed uploads goes
through `spira intake` as fast as it takes them; meanwhile one `spira worker` is SIGKILLed and restarted,
and the NATS server is restarted. Then: one stored result per accepted upload, each `spira predict`'s
answer within 1e-6; a 4xx and nothing queued for every malformed upload; in the dead-letter stream only the
messages poisoned on purpose. Then a `spira submit` killed mid-burst and resumed: no duplicate, none missing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spira.queue_local import SPIRA, BurstPath, process_env, wait_for, write_burst
from spira.stack import LocalStack, StackInfo
from spira.stack.net import wait_until
from spira.submit import Journal, results, submit
from spira_core.queue import Job, QueueNames, job_id_for
from spira_core.queue.nats import NatsJobQueue
from tests.fixtures.model import RegisteredModel

pytestmark = pytest.mark.integration

N_VALID = 2000
TOLERANCE = 1e-6


def _names(info: StackInfo) -> QueueNames:
    secret = info.operator_client().secrets.kv.v2.read_secret_version(
        path="spira/local/worker", mount_point="secret", raise_on_deleted_version=True
    )
    return QueueNames.from_secret(secret["data"]["data"]["queue"])


class QueueProbe:
    """The test's own connection to the stack's JetStream (a loop in a thread, called synchronously)."""

    def __init__(self, info: StackInfo) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.names = _names(info)
        self.queue: NatsJobQueue = self.call(NatsJobQueue.connect(info.nats_url, self.names, "test-probe"))

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def keys(self) -> set[str]:
        async def keys():
            try:
                return set(await self.queue._kv.keys())
            except Exception as exc:  # nats-py raises NoKeysError on an empty bucket
                if type(exc).__name__ == "NoKeysError":
                    return set()
                raise

        return self.call(keys())

    def close(self) -> None:
        self.call(self.queue.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def burst_path(local_stack: StackInfo, registered_model: RegisteredModel) -> Iterator[BurstPath]:
    work = Path(tempfile.mkdtemp(prefix="spira-burst-"))
    path = BurstPath(local_stack, registered_model.version, work / "logs", registered_model.tracking_uri)
    try:
        path.start_intake()
        path.start_worker()
        path.start_worker()
        yield path
    finally:
        path.stop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def probe(local_stack: StackInfo) -> Iterator[QueueProbe]:
    p = QueueProbe(local_stack)
    yield p
    p.close()


def _restart_nats(stack: LocalStack) -> None:
    proc = stack.nats.process()
    proc.stop()
    proc.start()
    assert wait_until(stack.nats.healthy, 30), proc.log_tail()


def _poison(probe: QueueProbe) -> tuple[list[bytes], str]:
    """Two messages no worker can ever turn into a result: not a job, and a job whose recording is missing
    (a job id of its own per run: a finished job's redelivery is acked, never dead-lettered twice)."""
    key = f"poison-missing-recording-{time.time_ns()}"
    missing = Job(
        job_id=job_id_for(key),
        idempotency_key=key,
        object_key=f"{probe.names.object_prefix}00/no-such-recording",
        sha256="0" * 64,
    ).to_bytes()
    payloads = [b"\x00 not a job \xff", missing]
    for i, payload in enumerate(payloads):
        probe.call(
            probe.queue.js.publish(
                probe.names.subject, payload, headers={"Nats-Msg-Id": f"poison-{i}-{time.time()}"}
            )
        )
    return payloads, job_id_for(key)


def _predict(version: str, files: list[Path], env: dict[str, str], tmp: Path) -> dict[str, dict]:
    out = subprocess.run(
        [*SPIRA, "predict", "--model", version, *map(str, files)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return {Path(a["file"]).name: a for a in map(json.loads, out.stdout.splitlines())}


def test_a_burst_with_a_killed_worker_and_a_nats_restart_loses_nothing_and_duplicates_nothing(
    local_stack: StackInfo,
    local_stack_handle: LocalStack,
    registered_model: RegisteredModel,
    burst_path: BurstPath,
    probe: QueueProbe,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "burst"
    valid, bad = write_burst(folder, N_VALID, malformed_share=0.05, seed=18)
    keys_before = probe.keys()
    letters_before = len(probe.call(probe.queue.dead_letters()))
    poisoned, poisoned_job = _poison(probe)
    journal = Journal(tmp_path / "journal.jsonl")
    sent: list[dict] = []
    faults: list[str] = []

    def chaos() -> None:
        # a third of the burst in: a worker dies without a word and another takes its place
        wait_for(lambda: len(sent) >= N_VALID // 3, 300, 0.05)
        burst_path.workers[0].kill()
        faults.append("worker killed")
        burst_path.start_worker(wait=False)
        # two thirds in: the queue's server restarts (the uploads in flight are retried by the client)
        wait_for(lambda: len(sent) >= 2 * N_VALID // 3, 300, 0.05)
        _restart_nats(local_stack_handle)
        faults.append("nats restarted")

    chaos_thread = threading.Thread(target=chaos)
    chaos_thread.start()
    counts = submit(
        folder,
        burst_path.intake_url,
        journal,
        site="burst-test",
        concurrency=12,
        say=sent.append,
        credential=burst_path.hospital(),
    )
    chaos_thread.join(120)
    assert faults == ["worker killed", "nats restarted"]

    entries = journal.entries()
    assert counts == {"accepted": len(valid), "rejected": len(bad), "skipped": 0}
    for path in bad:
        entry = entries[path.name]
        assert entry["state"] == "rejected" and 400 <= entry["status"] < 500, entry
    accepted = {name: e for name, e in entries.items() if e["state"] == "accepted"}
    assert set(accepted) == {p.name for p in valid}
    assert len({e["job_id"] for e in accepted.values()}) == len(valid)

    answers = {
        a["file"]: a for a in results(journal, wait_s=240, poll_s=0.2, credential=burst_path.hospital())
    }
    not_done = [a for a in answers.values() if a["file"] in accepted and a["status"] != "done"]
    assert not not_done, (not_done[:3], [w.log_tail(5) for w in burst_path.workers])

    # one stored state per accepted upload (its job id); nothing for the malformed ones
    keys = probe.keys()
    accepted_ids = {e["job_id"] for e in accepted.values()}
    assert accepted_ids <= keys
    assert not {job_id_for(entries[p.name]["key"]) for p in bad} & keys
    assert keys - keys_before <= accepted_ids | {poisoned_job}

    # the queue drains: the poisoned job waits out its backoff (infra/environments.yaml) before its dead letter
    def drained() -> bool:
        counts = probe.call(probe.queue.pending())
        return counts["messages"] == counts["pending"] == counts["ack_pending"] == 0

    assert wait_for(drained, 60), probe.call(probe.queue.pending())

    # each result is `spira predict`'s answer on the same file
    offline = _predict(
        registered_model.version, valid, process_env(local_stack, registered_model.tracking_uri), tmp_path
    )
    for path in valid:
        got, want = answers[path.name]["result"], offline[path.name]
        assert abs(got["probability"] - want["probability"]) <= TOLERANCE, (path.name, got, want)
        for key in ("label", "windows", "duration_s", "sample_rate_in", "model_version", "threshold"):
            assert got[key] == want[key], (path.name, key, got, want)

    # the dead-letter stream holds exactly the two poisoned messages, each with its reason
    letters = probe.call(probe.queue.dead_letters())[letters_before:]
    assert sorted(d["data"] for d in letters) == sorted(poisoned), letters
    reasons = {d["data"]: d["reason"] for d in letters}
    assert reasons[poisoned[0]].startswith("not a job")
    assert "max_deliver" in reasons[poisoned[1]] and "no-such-recording" in reasons[poisoned[1]]


def test_a_killed_submit_resumed_sends_every_recording_once(
    local_stack: StackInfo, burst_path: BurstPath, probe: QueueProbe, tmp_path: Path
) -> None:
    folder = tmp_path / "hospital"
    valid, _ = write_burst(folder, 120, malformed_share=0.0, seed=7)
    journal = tmp_path / "journal.jsonl"
    stream = probe.call(probe.queue.js.stream_info(probe.names.stream))
    first_seq = stream.state.last_seq
    cmd = [
        *SPIRA,
        "submit",
        str(folder),
        "--url",
        burst_path.intake_url,
        "--journal",
        str(journal),
        "--concurrency",
        "4",
    ]
    env = process_env(local_stack)
    client = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: journal.is_file() and len(journal.read_text().splitlines()) >= 30, 120, 0.02)
    finally:
        client.kill()  # SIGKILL: uploads in flight were maybe accepted and never journaled
        client.wait(10)
    journaled = len(Journal(journal).entries())
    assert journaled < len(valid)
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    counts = json.loads(resumed.stderr.strip().splitlines()[-1])
    assert counts["skipped"] == journaled and counts["accepted"] == len(valid) - journaled

    stream = probe.call(probe.queue.js.stream_info(probe.names.stream))
    assert stream.state.last_seq - first_seq == len(valid)  # one stored message per recording, no more

    out = subprocess.run(
        [*SPIRA, "submit", "--results", "--journal", str(journal), "--wait", "180"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(line["file"] for line in lines) == sorted(p.name for p in valid)
    assert all(line["status"] == "done" and 0.0 <= line["result"]["probability"] <= 1.0 for line in lines)


def test_the_intake_lets_in_only_a_hospitals_valid_token_before_reading_the_body(
    local_stack: StackInfo, burst_path: BurstPath, probe: QueueProbe, tmp_path: Path
) -> None:
    import requests

    from spira.stack.predict_clients import credential

    (recording,), _ = write_burst(tmp_path / "one", 1, malformed_share=0.0, seed=17)
    files = {"audio": (recording.name, recording.read_bytes(), "audio/wav")}
    url = f"{burst_path.intake_url}/v1/recordings"
    before = probe.call(probe.queue.js.stream_info(probe.names.stream)).state.last_seq

    anonymous = requests.post(url, files=files, headers={"Idempotency-Key": "auth-1"}, timeout=30)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "missing_credential"
    assert "Bearer" in anonymous.headers["WWW-Authenticate"]
    gate = credential(local_stack, "gate").headers()  # a valid token of the platform, not a hospital's
    refused = requests.post(url, files=files, headers={"Idempotency-Key": "auth-1", **gate}, timeout=30)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden_client"
    assert probe.call(probe.queue.js.stream_info(probe.names.stream)).state.last_seq == before

    hospital = burst_path.hospital().headers()
    accepted = requests.post(url, files=files, headers={"Idempotency-Key": "auth-1", **hospital}, timeout=30)
    assert accepted.status_code == 202, accepted.text
    status = f"{burst_path.intake_url}{accepted.json()['status_url']}"
    assert requests.get(status, timeout=10).status_code == 401
    assert requests.get(status, headers=hospital, timeout=10).status_code == 200
