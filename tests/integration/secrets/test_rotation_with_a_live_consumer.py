"""Rotating serving's S3 key while a consumer writes through its TTL-cached secret: no write fails.

Real OpenBao and SeaweedFS from the local stack; the consumer is the runtime code path workloads use
(JWT login, KV read, CachedSecret with a short TTL), doing S3 puts in a loop on its own thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.exceptions
import pytest

from infra.vault import layout
from serving.archive import UPLOADS_PREFIX
from spira.secrets.consumers import GAUGE, ConsumersNotReady, MetricsWait, TtlWait
from spira.secrets.rotation import rotate, utc_now
from spira.stack import StackInfo
from spira_core.settings import cached_service_secret
from spira_core.vault import CachedSecret, SecretVersion
from tests.fakes.vault import FakeSecretReader
from tests.integration.secrets.helpers import audit_reads, local_target, s3_put_works, spira

pytestmark = pytest.mark.integration

SERVICE = "serving"
TTL_S = 1


@dataclass
class Consumer:
    secret: CachedSecret
    info: StackInfo
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    versions_used: set[int] = field(default_factory=set)

    def run(self, stop: threading.Event) -> None:
        clients: dict[str, object] = {}
        i = 0
        while not stop.is_set():
            current = self.secret.get_version()
            data = current.data
            s3 = clients.get(data["s3_access_key"])
            if s3 is None:
                s3 = clients[data["s3_access_key"]] = self.info.s3_client(
                    data["s3_access_key"], data["s3_secret_key"]
                )
            try:
                s3.put_object(
                    Bucket=data["archive_bucket"],
                    Key=f"{UPLOADS_PREFIX}rotation-probe/{i % 50}",
                    Body=b"x" * 256,
                )
                self.ok += 1
                self.versions_used.add(current.version)
            except botocore.exceptions.ClientError as exc:
                self.failures.append(f"{data['s3_access_key']}: {exc.response['Error']['Code']}")
            i += 1
            time.sleep(0.02)


@contextmanager
def running(consumer: Consumer) -> Iterator[Consumer]:
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        time.sleep(1.5)  # well into its stride before the rotation starts
        yield consumer
        time.sleep(1.5)  # and on after the old key is gone
    finally:
        stop.set()
        thread.join(timeout=10)


def consumer_of(info: StackInfo) -> Consumer:
    env = {**info.service_env(SERVICE), "VAULT_SECRET_TTL_S": str(TTL_S)}
    return Consumer(cached_service_secret(env), info)


@contextmanager
def metrics_endpoint(secret: CachedSecret, ref: str) -> Iterator[str]:
    """What the serving service exports: the version its CachedSecret holds."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            version = secret.status().version or 0
            body = (f'# TYPE {GAUGE} gauge\n{GAUGE}{{path="{ref}"}} {version}\n').encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()


def test_s3_writes_never_fail_while_the_key_rotates_and_the_old_key_is_then_refused(
    local_stack: StackInfo,
) -> None:
    target = local_target(local_stack)
    before = target.secrets.read(layout.secret_path("local", SERVICE))
    started = datetime.now(UTC)
    with running(consumer_of(local_stack)) as consumer:
        result = rotate(
            "local",
            SERVICE,
            target.secrets,
            target.object_store,
            TtlWait(ttl_s=TTL_S, margin_s=2, clock=utc_now),
        )
    took = (result.finished_at - result.started_at).total_seconds()
    print(f"\nrotation (TTL {TTL_S}s + margin 2s) took {took:.2f}s; consumer puts: {consumer.ok}")

    assert consumer.failures == [], f"{len(consumer.failures)} failed puts: {consumer.failures[:3]}"
    assert consumer.ok > 20
    assert {before.version, result.to_version} <= consumer.versions_used, "the consumer never switched keys"
    bucket = before.data["archive_bucket"]
    assert not s3_put_works(local_stack, before.data["s3_access_key"], before.data["s3_secret_key"], bucket)
    now = target.secrets.read(layout.secret_path("local", SERVICE)).data
    assert s3_put_works(local_stack, now["s3_access_key"], now["s3_secret_key"], bucket)
    reads = audit_reads(local_stack, SERVICE, since=started)
    assert len(reads) >= 3, "the consumer's re-reads (one per TTL) are not in the audit log"


def test_the_cli_waits_for_the_consumers_version_gauge_before_revoking(local_stack: StackInfo) -> None:
    target = local_target(local_stack)
    path = layout.secret_path("local", SERVICE)
    before = target.secrets.read(path)
    consumer = consumer_of(local_stack)
    with metrics_endpoint(consumer.secret, layout.secret_ref("local", SERVICE)) as url, running(consumer):
        run = spira(
            "secrets",
            "rotate",
            "--env",
            "local",
            "--service",
            SERVICE,
            "--key",
            "s3",
            "--consumer",
            url,
            "--consumer-timeout",
            "60",
            "--margin",
            "1",
            env={"SPIRA_HOME": str(local_stack.home)},
        )
    assert run.returncode == 0, run.stderr
    assert f"version {before.version} → {before.version + 1}" in run.stderr
    assert f"{GAUGE} on {url}" in run.stderr
    assert consumer.failures == [], consumer.failures[:3]
    assert not s3_put_works(
        local_stack, before.data["s3_access_key"], before.data["s3_secret_key"], before.data["archive_bucket"]
    )


def test_a_consumer_that_never_picks_up_the_new_version_stops_the_rotation_before_revoking(
    local_stack: StackInfo,
) -> None:
    target = local_target(local_stack)
    path = layout.secret_path("local", SERVICE)
    before = target.secrets.read(path)

    # A consumer cut off from Vault keeps its last value through its grace period: its gauge stays put.
    reader = FakeSecretReader({})
    reader.version = SecretVersion({}, before.version)
    stuck = CachedSecret(reader, ttl_s=3600, grace_s=300)
    stuck.get()

    with metrics_endpoint(stuck, layout.secret_ref("local", SERVICE)) as url:
        with pytest.raises(ConsumersNotReady, match=f"version {before.version}"):
            rotate(
                "local",
                SERVICE,
                target.secrets,
                target.object_store,
                MetricsWait([url], timeout_s=2, clock=utc_now, poll_s=0.2, margin_s=0),
            )
        keys = target.object_store.list_keys(f"spira-local-{SERVICE}")
        assert before.data["s3_access_key"] in keys and len(keys) == 2, "both keys must stay valid"
        # Once the consumer catches up, rerunning finishes the same rotation.
        resumed = rotate("local", SERVICE, target.secrets, target.object_store, TtlWait(0, 0, clock=utc_now))
    assert resumed.resumed and resumed.to_version == before.version + 1
    assert target.object_store.list_keys(f"spira-local-{SERVICE}") == [resumed.new_access_key]
