"""TLS inside the clusters: the model serves /predict over HTTPS, the object store's S3 API is https, both
with certificates that cert-manager issues from the platform CA (the private CA of Vault's certificate,
docs/security.md). Every client trusts exactly that CA, found where it already finds Vault's: `ca.crt`
beside its login credential (`spira_core.vault.settings.vault_ca_path`; the projected vault-ca ConfigMap
in a pod). The local stack keeps plain HTTP for /predict and S3 by default; the same settings run there
with a certificate from the local stack's CA (spira/stack/tls.py) in the tests.

The serving settings are BentoML's own (`ssl` of the service config), given through its override variable
BENTOML_CONFIG_OPTIONS, so the image's command does not change; the Rollout's container carries exactly
`bentoml_ssl_options(SERVING_CERT, SERVING_KEY)` and mounts the Certificate's Secret at SERVING_TLS_DIR
(tests/unit/manifests/test_serving_tls.py holds the manifests to this module).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path

from spira_core.vault.settings import DEFAULT_TOKEN_PATH, vault_ca_path

# The BentoML service name (serving/service.py `@bentoml.service(name=...)`): its config section.
BENTO_SERVICE = "spira"
# Where the model's pod mounts the Secret of its Certificate (cert-manager writes tls.crt and tls.key).
SERVING_TLS_DIR = "/var/run/secrets/spira-tls"
SERVING_CERT = f"{SERVING_TLS_DIR}/tls.crt"
SERVING_KEY = f"{SERVING_TLS_DIR}/tls.key"
BENTOML_OVERRIDE_ENV = "BENTOML_CONFIG_OPTIONS"


def bentoml_ssl_options(certfile: str | Path, keyfile: str | Path) -> str:
    """The value of BENTOML_CONFIG_OPTIONS that makes `bentoml serve` listen with TLS only."""
    section = f"services.{BENTO_SERVICE}.ssl"
    return f"{section}.enabled=true {section}.certfile={certfile} {section}.keyfile={keyfile}"


def platform_ca_path(environ: Mapping[str, str] | None = None) -> Path:
    """The platform CA for this process: `ca.crt` beside its Vault credential (the signing key locally,
    the projected token in a pod), the one rule VaultSettings.ca_path follows too."""
    env = os.environ if environ is None else environ
    credential = env.get("VAULT_JWT_SIGNER_KEY") or env.get("VAULT_JWT_PATH") or DEFAULT_TOKEN_PATH
    return vault_ca_path(Path(credential))


def s3_verify(endpoint: str, environ: Mapping[str, str] | None = None) -> str | None:
    """boto3's `verify=` for an object-store endpoint: the platform CA's file for https (nothing else is
    trusted), None (boto3's default, no TLS involved) for the plain-HTTP local stack."""
    if not endpoint.lower().startswith("https://"):
        return None
    return str(platform_ca_path(environ))


def nats_tls(url: str, environ: Mapping[str, str] | None = None) -> ssl.SSLContext | None:
    """The TLS context of a NATS client for `url`: with a `tls://` URL (a server whose certificate is the
    platform CA's) a context trusting that CA only; None for `nats://` (the local stack's plain server)."""
    if not url.lower().startswith("tls://"):
        return None
    return ssl.create_default_context(cafile=str(platform_ca_path(environ)))
