"""Deliberately degraded candidates, to prove the promotion gate blocks them.

`SPIRA_DEGRADE="latency=400,errors=0.2,version=0-bogus"` (any subset) turns the real service into a bad
candidate: added latency per request, a fraction of requests failing with 500, or a wrong model_version.
A non-secret, test-only setting; production manifests never set it (the manifest checks allow only the
three VAULT_* variables).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from serving.runtime import ServingRuntime


@dataclass(frozen=True)
class Degradation:
    latency_ms: float = 0.0
    error_ratio: float = 0.0
    version: str | None = None

    @classmethod
    def parse(cls, spec: str) -> Degradation:
        values: dict[str, object] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, _, value = part.partition("=")
            if key == "latency":
                values["latency_ms"] = float(value)
            elif key == "errors":
                values["error_ratio"] = float(value)
            elif key == "version":
                values["version"] = value
            else:
                raise ValueError(f"SPIRA_DEGRADE: unknown setting {key!r} (latency, errors, version)")
        return cls(**values)


class InjectedFailure(RuntimeError):
    pass


class DegradedRuntime(ServingRuntime):
    degradation: Degradation = Degradation()
    rng: random.Random = random.Random(0)

    async def predict(self, data: bytes, filename: str = "") -> dict[str, object]:
        d = self.degradation
        if d.latency_ms:
            await asyncio.sleep(d.latency_ms / 1000.0)
        if d.error_ratio and self.rng.random() < d.error_ratio:
            raise InjectedFailure("SPIRA_DEGRADE: injected failure")
        answer = await super().predict(data, filename)
        if d.version is not None:
            answer["model_version"] = d.version
        return answer


def degrade(runtime: ServingRuntime, spec: str) -> ServingRuntime:
    degraded = DegradedRuntime(**{f: getattr(runtime, f) for f in runtime.__dataclass_fields__})
    degraded.degradation = Degradation.parse(spec)
    degraded.rng = random.Random(0)
    return degraded
