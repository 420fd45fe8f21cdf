"""BentoML's tracing leaves the prediction routes out (issue 21: a recording span per ASGI message of a
0.5 MB upload, with nothing exporting them), and only them."""

from __future__ import annotations

from opentelemetry.util.http import ExcludeList

from serving.app import UNTRACED_PATHS


def test_the_prediction_routes_are_left_out_of_tracing_and_the_others_are_not() -> None:
    excluded = ExcludeList(UNTRACED_PATHS)  # what BentoML builds from the service's tracing.excluded_urls
    base = "http://127.0.0.1:3000"
    assert excluded.url_disabled(f"{base}/predict")
    assert excluded.url_disabled(f"{base}/predict_batch")
    for path in ("/info", "/readyz", "/livez", "/metrics"):
        assert not excluded.url_disabled(f"{base}{path}")
