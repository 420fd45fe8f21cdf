"""OpenBao speaks TLS with a certificate from the stack's own CA, as the clusters' Vault does."""

from __future__ import annotations

import os
import shutil
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography import x509

from spira.stack import StackInfo
from spira.stack.tls import LocalCa

pytestmark = pytest.mark.integration


def test_vault_answers_over_https_verified_against_the_stack_ca_only(local_stack: StackInfo) -> None:
    assert local_stack.vault_addr.startswith("https://127.0.0.1:")
    health = f"{local_stack.vault_addr}/v1/sys/health"
    assert requests.get(health, verify=str(local_stack.vault_ca), timeout=10).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(health, verify=True, timeout=10)  # the system's CAs do not know the stack's CA
    plain = health.replace("https://", "http://")
    assert requests.get(plain, timeout=10).status_code == 400  # no plaintext API


def test_the_certificate_names_127_0_0_1_and_localhost_and_chains_to_the_ca(local_stack: StackInfo) -> None:
    port = int(local_stack.vault_addr.rsplit(":", 1)[1])
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    cert = x509.load_pem_x509_certificate(pem.encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(local_stack.vault_ca.read_bytes()))


def test_private_keys_are_0600_and_the_ca_sits_beside_the_signing_key(local_stack: StackInfo) -> None:
    tls = LocalCa(local_stack.home, local_stack.vault_ca)
    for key in (tls.ca_key, tls.server_key, local_stack.signer.private_key_path):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert local_stack.vault_ca == local_stack.signer.private_key_path.parent / "ca.crt"


def test_an_operator_shell_from_stack_env_reaches_vault_with_the_bao_cli(local_stack: StackInfo) -> None:
    bao = shutil.which("bao") or str(Path(sys.executable).parent / "bao")
    env = {"PATH": os.environ["PATH"], "HOME": str(local_stack.home), **local_stack.shell_env()}
    assert env["VAULT_CACERT"] == str(local_stack.vault_ca)
    out = subprocess.run(
        [bao, "kv", "get", "-format=json", "secret/spira/local/serving"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    without_ca = {k: v for k, v in env.items() if k != "VAULT_CACERT"}
    refused = subprocess.run([bao, "status"], env=without_ca, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "certificate" in refused.stderr


def test_a_server_certificate_from_another_ca_is_renewed(tmp_path: Path) -> None:
    ca = LocalCa(tmp_path, tmp_path / "jwt" / "ca.crt")
    ca.ensure()
    first = ca.server_cert.read_bytes()
    ca.ensure()
    assert ca.server_cert.read_bytes() == first  # still valid: kept
    ca.ca_cert.unlink()
    ca.ensure()  # a new CA: the old server certificate no longer chains to it
    assert ca.server_cert.read_bytes() != first
    new = x509.load_pem_x509_certificate(ca.server_cert.read_bytes())
    new.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.ca_cert.read_bytes()))
