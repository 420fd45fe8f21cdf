"""Rendered environments for the manifest tests, rendered once per session (kustomize is a subprocess)."""

from __future__ import annotations

import copy
from functools import cache

from spira.manifests import render


@cache
def _rendered(env: str) -> tuple[dict, ...]:
    return tuple(render.render_docs(env))


def docs(env: str = "staging") -> list[dict]:
    """A fresh deep copy: tests mutate it."""
    return copy.deepcopy(list(_rendered(env)))


def one(items: list[dict], kind: str, name: str | None = None) -> dict:
    (found,) = [d for d in items if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return found


def model(items: list[dict]) -> dict:
    rollout = one(items, "Rollout", "spira-model")
    (container,) = [c for c in rollout["spec"]["template"]["spec"]["containers"] if c["name"] == "model"]
    return container


def gate_job(items: list[dict]) -> dict:
    return one(items, "AnalysisTemplate", "spira-gate")["spec"]["metrics"][0]["provider"]["job"]
