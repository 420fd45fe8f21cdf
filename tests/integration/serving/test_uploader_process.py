"""The archive's uploader as the pod runs it (`python -m serving.uploader`), against the stack's SeaweedFS:
SIGKILLed midway through a backlog and started again, it uploads every spooled item exactly once (each
item's two objects, byte for byte, and nothing else) and empties the spool; SIGTERM ends it with a drain."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest

from serving.archive import Spool, decode_item
from spira.local_server import REPO, start_uploader
from spira.stack import StackInfo
from spira.stack.net import wait_until
from spira_core.settings import service_secret
from tests.fakes.serving import RecordingMetrics

pytestmark = pytest.mark.integration

ITEMS = 120


def _left(folder: Path) -> int:
    return len(list(folder.glob("*.spool")))


def test_an_uploader_killed_midway_and_started_again_archives_every_spooled_item_exactly_once(
    local_stack: StackInfo, tmp_path: Path
) -> None:
    owner = f"spira-uploader-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        **local_stack.service_env("serving"),
        "PYTHONPATH": str(REPO),
        "SPIRA_ARCHIVE_SPOOL": str(tmp_path / "spool"),
        "HOSTNAME": owner,
    }
    folder = tmp_path / "spool" / owner
    spool = Spool(tmp_path / "spool", RecordingMetrics(), owner=owner)
    for i in range(ITEMS):  # what the server answered: spooled before the uploader runs
        assert spool.submit(os.urandom(64_000), {"label": "control", "i": i}, f"{owner}-{i}.wav")
    expected: dict[str, bytes] = {}
    for item in folder.glob("*.spool"):
        audio, raw, record = decode_item(item.read_bytes())
        expected[f"{record['key_prefix']}.audio"] = audio
        expected[f"{record['key_prefix']}.json"] = raw
    prefixes = {key.rsplit("/", 1)[0] + "/" for key in expected}

    first = start_uploader(env, tmp_path / "run", "uploader-1")
    try:
        assert wait_until(lambda: _left(folder) < ITEMS, 60, interval_s=0.01), first.log_tail(30)
        os.kill(first.pid() or 0, signal.SIGKILL)  # no drain, no status written: the kernel's kill
    finally:
        first.stop()
    left_at_kill = _left(folder)
    assert 0 < left_at_kill < ITEMS, f"not killed midway: {left_at_kill} of {ITEMS} left"

    second = start_uploader(env, tmp_path / "run", "uploader-2")
    try:
        assert wait_until(lambda: _left(folder) == 0, 120, interval_s=0.2), second.log_tail(30)
    finally:
        second.stop()  # SIGTERM: the drain, then exit
    log = second.log_path.read_text(errors="replace")
    assert "drained 0 in" in log and "0 left on the spool" in log, log[-2000:]
    assert sorted(p.name for p in folder.iterdir()) == [".alive", ".uploader.json"]

    s3 = local_stack.s3_client()
    bucket = service_secret("serving", local_stack.service_env("serving"))["archive_bucket"]
    ids = {key.rsplit("/", 1)[1].split(".")[0] for key in expected}
    archived = [
        o["Key"]
        for prefix in prefixes
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
        if o["Key"].rsplit("/", 1)[1].split(".")[0] in ids
    ]
    assert sorted(archived) == sorted(expected), (
        f"{len(set(expected) - set(archived))} of {len(expected)} objects missing, "
        f"{len(archived) - len(set(archived))} listed twice, {len(set(archived) - set(expected))} unexpected"
    )
    for key in sorted(expected)[:: max(1, len(expected) // 20)]:  # a sample, byte for byte
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == expected[key]
