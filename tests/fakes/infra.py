"""Offline plans of the Pulumi program for the infra tests.

The engine stand-in (Pulumi mocks that record every registration) is `infra.offline`, shared with
`spira infra plan`; here it is only run once per stack and configuration and cached, because each run
executes the whole program (about two seconds).
"""

from __future__ import annotations

import json
from functools import cache

from infra import offline
from infra.offline import Plan, Recorded


@cache
def _plan(stack: str, overrides_json: str) -> Plan:
    # offline.run installs the mocks and the stack's config before it executes the program.
    return offline.run(stack, overrides=json.loads(overrides_json))


def plan(stack: str, **overrides: object) -> Plan:
    return _plan(stack, json.dumps(overrides, sort_keys=True))


def where(r: Recorded) -> str:
    """How a failure names the resource: its URN, as `pulumi preview` would."""
    return f"[{r.urn}]"
