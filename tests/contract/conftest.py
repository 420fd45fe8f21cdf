"""The HTTP contract tests run against any server: SPIRA_CONTRACT_URL (an ephemeral container by digest,
a preview service), or, in the normal suite, the session's real `bentoml serve`."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def contract_url(request: pytest.FixtureRequest) -> str:
    url = os.environ.get("SPIRA_CONTRACT_URL")
    if url:
        return url.rstrip("/")
    return request.getfixturevalue("served_model").url


@pytest.fixture(scope="session")
def expected_model_version(request: pytest.FixtureRequest) -> str | None:
    if os.environ.get("SPIRA_CONTRACT_URL"):
        return os.environ.get("SPIRA_CONTRACT_MODEL_VERSION")
    return request.getfixturevalue("served_model").version
