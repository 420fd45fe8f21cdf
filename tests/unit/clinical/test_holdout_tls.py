"""The clinical gate reads the holdout from an https object store trusting the platform CA only."""

from __future__ import annotations

from pathlib import Path

from spira.clinical.holdout_access import aws_variables

SECRET = {"s3_access_key": "a", "s3_secret_key": "s"}


def test_an_https_object_store_is_verified_with_the_ca_beside_the_login_credential() -> None:
    env = aws_variables(
        {**SECRET, "s3_endpoint": "https://seaweedfs-s3.objectstore.svc:8333"}, Path("/v/ca.crt")
    )
    assert env["AWS_CA_BUNDLE"] == "/v/ca.crt"


def test_a_plain_http_object_store_names_no_ca() -> None:
    env = aws_variables({**SECRET, "s3_endpoint": "http://127.0.0.1:8333"}, Path("/v/ca.crt"))
    assert "AWS_CA_BUNDLE" not in env and env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:8333"
