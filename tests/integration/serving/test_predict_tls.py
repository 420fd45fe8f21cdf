"""/predict over HTTPS, as the clusters serve it: the real `bentoml serve` of the model gets a certificate
issued by the stack's CA (the platform CA's local counterpart) through the settings the Rollout's container
carries (spira_core.tls), and a client that trusts that CA gets its answer; one that does not trust it, or
that speaks plain HTTP, gets nothing."""

from __future__ import annotations

import http.client
import shutil
import ssl
import urllib.error
import urllib.request
import uuid

import pytest

from spira.local_server import server_env, start_local_server
from spira.stack import StackInfo
from spira.stack.predict_clients import client_env
from spira.stack.tls import LocalCa
from spira_core.predict_credential import PredictCredential
from spira_core.tls import BENTOML_OVERRIDE_ENV, bentoml_ssl_options
from tests.contract.test_http_contract import _clip
from tests.fixtures import model as fixture

pytestmark = pytest.mark.integration


def _multipart(clip: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + clip
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def _predict(url: str, headers: dict[str, str], context: ssl.SSLContext | None) -> tuple[int, bytes]:
    body, content_type = _multipart(_clip(4.0, 16_000))
    request = urllib.request.Request(
        f"{url}/predict", data=body, method="POST", headers={"Content-Type": content_type, **headers}
    )
    with urllib.request.urlopen(request, timeout=60, context=context) as resp:
        return resp.status, resp.read()


def test_predict_answers_over_https_to_a_client_that_trusts_the_platform_ca_and_to_no_other(
    local_stack: StackInfo, registered_model: fixture.RegisteredModel, served_model: fixture.ServedModel
) -> None:
    home = fixture.second_server_home(served_model)
    cert, key = home / "tls" / "tls.crt", home / "tls" / "tls.key"
    LocalCa(local_stack.home, local_stack.vault_ca).issue("spira-model-preview.spira.svc", cert, key)
    settings = {
        "MLFLOW_TRACKING_URI": registered_model.tracking_uri,
        **local_stack.service_env("serving"),
        "SPIRA_ARCHIVE_SPOOL": str(home / "spool"),
        BENTOML_OVERRIDE_ENV: bentoml_ssl_options(cert, key),
    }
    env = server_env(home / "bentoml", home / "model.lock.json", **settings)
    server = start_local_server(env, home, name="serve-tls", https_ca=local_stack.vault_ca)
    try:
        assert server.url.startswith("https://127.0.0.1:")
        headers = PredictCredential.from_env(client_env(local_stack, "gate")).headers()
        trusting = ssl.create_default_context(cafile=str(local_stack.vault_ca))
        status, answer = _predict(server.url, headers, trusting)
        assert status == 200 and b"model_version" in answer, answer[:300]

        # the system's trust store does not hold the platform CA: the handshake is refused
        with pytest.raises(urllib.error.URLError) as refused:
            _predict(server.url, headers, ssl.create_default_context())
        assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)

        # nothing is served in clear text on the TLS port
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            _predict(server.url.replace("https://", "http://"), headers, None)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
