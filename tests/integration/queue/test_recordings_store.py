"""The recordings as the burst path moves them, on the stack's real SeaweedFS: the intake stores an upload
with boto3 under its own credential, a worker reads it back through the lean signed GET
(spira_core.objects.SignedGet) under the worker's; a missing object, a wrong key and a store that does not
answer are the errors the worker retries or dead-letters on."""

from __future__ import annotations

import pytest

from spira.stack import StackInfo
from spira.stack.net import free_port
from spira_core.objects import ObjectMissing, ObjectStoreError, S3Recordings, SignedGet
from spira_core.settings import cached_service_secret

pytestmark = pytest.mark.integration


def test_a_worker_reads_back_byte_for_byte_what_the_intake_stored_and_tells_missing_from_refused(
    local_stack: StackInfo,
) -> None:
    intake = S3Recordings(cached_service_secret(local_stack.service_env("intake")))
    worker_secret = cached_service_secret(local_stack.service_env("worker"))
    worker = S3Recordings(worker_secret)
    body = bytes(range(256)) * 2500  # 640 kB, a recording's size; every byte value
    key = "recordings/5e/5e-signed-get-check"
    intake.put(key, body)

    assert worker.get(key) == body
    assert worker.get(key) == body  # again, on the pooled keep-alive connection
    with pytest.raises(ObjectMissing):
        worker.get("recordings/00/no-such-recording")

    values = worker_secret.get()
    wrong = SignedGet(values["s3_endpoint"], values["s3_access_key"], values["s3_secret_key"] + "x")
    with pytest.raises(ObjectStoreError, match="HTTP 403"):
        wrong.get(values["archive_bucket"], key)
    nobody = SignedGet(f"http://127.0.0.1:{free_port()}", "k", "s", connect_timeout_s=1)
    with pytest.raises(ObjectStoreError):
        nobody.get("bucket", key)
