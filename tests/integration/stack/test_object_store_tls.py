"""The object store's S3 API over TLS, as the clusters run it: SeaweedFS's S3 gateway (`weed s3` with
-cert.file/-key.file on its one port, the chart values of infra/components/object_store.py) in front of the
stack's filer, with a certificate from the stack's CA. The project's S3 client trusts that CA through
`spira_core.tls.s3_verify` (the CA beside the Vault credential) and works; boto3's public bundle does not
trust it, and the port speaks no plain HTTP."""

from __future__ import annotations

from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from spira.stack import StackInfo
from spira.stack.config import StackConfig
from spira.stack.net import free_port, http_status, wait_until
from spira.stack.process import ManagedProcess
from spira.stack.seaweed import SeaweedService, weed_binary
from spira.stack.tls import LocalCa
from spira_core.objects import ObjectStoreError, SignedGet
from spira_core.tls import s3_verify
from training.adapters.s3 import S3ArtifactStore

pytestmark = pytest.mark.integration


def test_s3_over_tls_answers_the_client_that_trusts_the_platform_ca_and_no_other(
    local_stack: StackInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = StackConfig.load(local_stack.home)
    seaweed = SeaweedService(cfg)
    cert, key = tmp_path / "tls" / "tls.crt", tmp_path / "tls" / "tls.key"
    LocalCa(local_stack.home, local_stack.vault_ca).issue("seaweedfs-s3.objectstore.svc", cert, key)
    port = free_port()
    argv = [
        weed_binary(),
        "s3",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-port={port}",
        f"-port.grpc={free_port()}",
        "-port.iceberg=0",
        "-port.lance=0",
        f"-filer=127.0.0.1:{cfg.filer_port}",
        f"-config={seaweed.identities}",
        f"-cert.file={cert}",
        f"-key.file={key}",
    ]
    gateway = ManagedProcess(f"s3-tls-{port}", argv, tmp_path, grace_s=3)
    gateway.start()
    endpoint = f"https://127.0.0.1:{port}"
    try:
        ready = wait_until(
            lambda: http_status(f"{endpoint}/healthz", ca=local_stack.vault_ca) == 200,
            timeout_s=60,
            abort=gateway.exited_early,
        )
        assert ready, gateway.log_tail(30)

        # the workload's rule: the CA beside its Vault credential (locally the signing key)
        monkeypatch.setenv("VAULT_JWT_SIGNER_KEY", str(local_stack.signer.private_key_path))
        assert s3_verify(endpoint) == str(local_stack.vault_ca)
        keys = seaweed.admin_keys()
        store = S3ArtifactStore(endpoint, keys["access_key"], keys["secret_key"], "spira-tls-check", "tls")
        store.put("probe", b"over tls")
        assert store.get("probe") == b"over tls"
        # the queue worker's lean read (spira_core.objects.SignedGet) trusts the same CA and no other
        access, secret = keys["access_key"], keys["secret_key"]
        signed = SignedGet(endpoint, access, secret, verify=s3_verify(endpoint))
        assert signed.get("spira-tls-check", "tls/probe") == b"over tls"
        with pytest.raises(ObjectStoreError, match="CERTIFICATE_VERIFY_FAILED"):
            SignedGet(endpoint, access, secret).get("spira-tls-check", "tls/probe")

        # boto3's own trust (certifi's public roots) does not know the platform CA
        untrusting = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=keys["access_key"],
            aws_secret_access_key=keys["secret_key"],
            config=Config(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=5),
        )
        with pytest.raises(botocore.exceptions.SSLError):
            untrusting.list_buckets()

        # no clear text on the TLS port: Go's TLS server answers a plain request with 400, nothing else
        assert http_status(f"http://127.0.0.1:{port}/healthz") in (None, 400)
    finally:
        gateway.stop()
