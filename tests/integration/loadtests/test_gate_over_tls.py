"""The gate against an https candidate, as the clusters' preview serves: the probe and Locust verify the
certificate against the CA in SSL_CERT_FILE (the gate Job sets it to the platform CA beside its token) and
pass; without that CA they refuse the candidate instead of load-testing an unverified server."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from loadtests import gate
from spira.stack.tls import LocalCa
from tests.fakes.prediction_server import Behaviour, FakePredictionServer, _QuietServer
from tests.integration.loadtests.conftest import EXPECTED_VERSION


class _TlsServer(_QuietServer):
    context: ssl.SSLContext

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        return self.context.wrap_socket(sock, server_side=True), address


def _https_fake(tmp_path: Path) -> tuple[FakePredictionServer, str, Path]:
    ca = LocalCa(tmp_path, tmp_path / "ca.crt")
    ca.ensure()  # a CA and a server certificate for 127.0.0.1
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(ca.server_cert, ca.server_key)
    server_class = type("TlsServer", (_TlsServer,), {"context": context})
    fake = type("HttpsFake", (FakePredictionServer,), {"server_class": server_class})
    server = fake(Behaviour(model_version=EXPECTED_VERSION)).start()
    return server, server.url.replace("http://", "https://"), ca.ca_cert


def test_the_gate_verifies_an_https_candidate_against_the_ca_it_is_given(
    run_gate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url, ca = _https_fake(tmp_path / "tls")
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
        trusted = run_gate(url)
        assert trusted.exit_code == gate.PASS, gate.format_text(trusted)
        assert server.predict_requests > 5  # Locust's uploads went over TLS, not only the probe's

        monkeypatch.delenv("SSL_CERT_FILE")
        untrusted = run_gate(url, out_dir=tmp_path / "untrusted")
        assert untrusted.exit_code == gate.COULD_NOT_RUN, gate.format_text(untrusted)
        assert "CERTIFICATE_VERIFY_FAILED" in (untrusted.error or ""), untrusted.error
    finally:
        server.stop()
