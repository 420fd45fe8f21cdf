"""A BentoML service whose every prediction fails with 500, as a model that raises on each input would: the
bad colour the post-promotion analysis must fail. It runs under a real `bentoml serve`, so BentoML's own
request metrics (`bentoml_service_request_total{http_response_code}`) count its answers exactly as they count
the real service's; there is no fault switch in serving/ (docs/serving.md)."""

from __future__ import annotations

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def predict(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"error": "internal", "detail": "the model raised"}, status_code=500)


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])


@bentoml.asgi_app(app, path="/")
@bentoml.service(name="spira", workers=1)
class FailingColour:
    pass
