"""In-cluster TLS settings (spira_core/tls.py): S3 clients trust exactly the platform CA beside their
Vault credential for an https endpoint, and `bentoml serve` gets its certificate through BentoML's own
override variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from spira_core.tls import BENTO_SERVICE, bentoml_ssl_options, nats_tls, platform_ca_path, s3_verify
from spira_core.vault.settings import DEFAULT_TOKEN_PATH


def test_an_https_object_store_is_verified_with_the_ca_beside_the_projected_token() -> None:
    assert s3_verify("https://seaweedfs-s3.objectstore.svc:8333", {}) == str(
        Path(DEFAULT_TOKEN_PATH).parent / "ca.crt"
    )


def test_locally_the_ca_is_the_one_beside_the_signing_key() -> None:
    env = {"VAULT_JWT_SIGNER_KEY": "/home/x/.spira/jwt/signing-key.pem", "VAULT_JWT_PATH": "/ignored/token"}
    assert platform_ca_path(env) == Path("/home/x/.spira/jwt/ca.crt")
    assert s3_verify("HTTPS://127.0.0.1:8333", env) == "/home/x/.spira/jwt/ca.crt"


def test_a_plain_http_object_store_keeps_botos_default() -> None:
    assert s3_verify("http://127.0.0.1:8333", {"VAULT_JWT_PATH": "/t/token"}) is None


def test_the_bentoml_override_enables_ssl_of_the_spira_service_with_both_files() -> None:
    options = dict(item.split("=", 1) for item in bentoml_ssl_options("/c/tls.crt", "/c/tls.key").split())
    assert options == {
        f"services.{BENTO_SERVICE}.ssl.enabled": "true",
        f"services.{BENTO_SERVICE}.ssl.certfile": "/c/tls.crt",
        f"services.{BENTO_SERVICE}.ssl.keyfile": "/c/tls.key",
    }
    assert 'name="spira"' in (Path(__file__).parents[3] / "serving" / "service.py").read_text()


def test_a_plain_nats_url_gets_no_tls_context_and_a_tls_url_needs_the_ca_beside_the_credential() -> None:
    assert nats_tls("nats://127.0.0.1:4222", {}) is None
    with pytest.raises(FileNotFoundError):  # no CA, no connection: never the system's roots
        nats_tls("tls://nats.nats.svc:4222", {"VAULT_JWT_PATH": "/nonexistent/token"})
