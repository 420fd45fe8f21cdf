"""benchmarks.served --tls: each server gets a certificate from the stack's CA for the address the client
dials, through the same BentoML settings the Rollout's container carries."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509

from benchmarks.served import StackTls
from spira.stack.tls import LocalCa
from spira_core.tls import BENTOML_OVERRIDE_ENV, bentoml_ssl_options


def test_a_benchmark_server_gets_a_certificate_of_the_stacks_ca_for_loopback_and_the_rollouts_tls_settings(
    tmp_path: Path,
) -> None:
    home = tmp_path / "stack"
    ca = home / "tls" / "ca.crt"
    LocalCa(home, ca).ensure()
    run = tmp_path / "run-ab-off"

    env = StackTls(home, ca).server_env(run)

    cert_path, key_path = run / "tls" / "tls.crt", run / "tls" / "tls.key"
    assert env == {BENTOML_OVERRIDE_ENV: bentoml_ssl_options(cert_path, key_path)}
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    authority = x509.load_pem_x509_certificate(ca.read_bytes())
    cert.verify_directly_issued_by(authority)  # raises unless the stack's CA signed it
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert key_path.stat().st_mode & 0o077 == 0  # the key is the server's alone


def test_the_summary_gives_each_rounds_tls_over_plain_and_their_median() -> None:
    from benchmarks.served import summary

    report = {
        "host": "a host",
        "seconds": 8.0,
        "server_core": 1,
        "modes": {},  # no server measured step by step in a --tls-ab run
        "tls_ab": {
            "plain": [8.0, 10.0],
            "tls": [8.4, 10.2],
            "load1": [1.0, 1.5],
            "clients": 4,
            "ratio_each_round": [1.05, 1.02],
            "median_plain": 9.0,
            "median_tls": 9.3,
            "median_ratio": 1.035,
        },
    }
    text = summary(report)
    assert "plain HTTP and TLS only side by side: 4 clients, 8 s per step, server core 1, a host" in text
    assert "| 1      | 8.00" in text and "1.050x" in text and "1.020x" in text
    assert "| median | 9.00" in text and "1.035x" in text
