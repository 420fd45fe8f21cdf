"""The BentoML service. Thin: the pinned model, the wiring function, readiness.

The model reference is a class attribute because that is how BentoML discovers what to pack into the
Bento; it reads the small pin file, nothing else happens at import.
"""

from __future__ import annotations

import os
from pathlib import Path

import bentoml

from serving.app import UNTRACED_PATHS, create_app
from serving.pin import ModelPin
from spira_core.client_auth import BearerAuth

# Every client presents a token from Vault, checked before its body is read (spira_core/client_auth.py).
app = BearerAuth(
    create_app(lambda: bentoml.get_current_service().runtime),
    verifier=lambda: bentoml.get_current_service().verifier,
    rejected=lambda code: bentoml.get_current_service().runtime.metrics.rejected(code),
)


@bentoml.asgi_app(app, path="/")
@bentoml.service(
    name="spira",
    workers=1,
    traffic={"timeout": 30, "max_concurrency": 256},
    resources={"cpu": "1"},
    tracing={"excluded_urls": UNTRACED_PATHS},
)
class Spira:
    model_ref = bentoml.models.BentoModel(ModelPin.read().bento_tag)

    def __init__(self) -> None:
        from serving.wiring import build_runtime
        from spira_core.client_auth import verifier_from_env

        self.verifier = verifier_from_env(os.environ)
        self.runtime = build_runtime(Path(self.model_ref.path), os.environ)

    @bentoml.on_shutdown
    async def stop_archive_spool(self) -> None:
        # SIGTERM: uvicorn has stopped accepting and finished the requests in flight, each spooled before
        # its answer; the uploader sidecar (serving/uploader.py), stopped after this container, drains.
        self.runtime.shutdown()

    def __is_ready__(self) -> bool:
        # ready only with the model loaded (it is, once __init__ returned), the secret readable and the
        # keys that check clients' tokens fetched
        keys_ready = self.verifier is None or self.verifier.keys.ready()
        return self.runtime.secret_readable() and keys_ready
