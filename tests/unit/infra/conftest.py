from __future__ import annotations

import pytest

from infra.offline import STACKS, Plan
from tests.fakes.infra import plan


@pytest.fixture(params=STACKS)
def stack_plan(request: pytest.FixtureRequest) -> Plan:
    return plan(request.param)


@pytest.fixture
def staging() -> Plan:
    return plan("staging")


@pytest.fixture
def production() -> Plan:
    return plan("production")
