"""The difference between two stacks' plans, and the allowlist it must match.

Values are compared leaf by leaf (dotted paths; list items by index). The environment's own name is
replaced by `<env>` first: `spira/staging/serving` and `spira/production/serving` are the same setting
for two environments, not a drift.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.contracts import INFRA_DIR
from infra.offline import Plan

ALLOWLIST = INFRA_DIR / "diff-allowlist.yaml"
ABSENT = "<absent>"


@dataclass(frozen=True, order=True)
class Difference:
    type: str
    name: str
    path: str
    left: str
    right: str


@dataclass(frozen=True)
class Allowed:
    type: str
    name: str
    path: str
    category: str
    why: str

    def covers(self, d: Difference) -> bool:
        return (
            fnmatch.fnmatchcase(d.type, self.type)
            and fnmatch.fnmatchcase(d.name, self.name)
            and fnmatch.fnmatchcase(d.path, self.path)
        )


CATEGORIES = ("sizes", "counts", "instance types", "domain names", "branch", "retention")


def _normalise(value: Any, env: str) -> Any:
    if isinstance(value, str):
        return value.replace(env, "<env>")
    if isinstance(value, dict):
        return {k: _normalise(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v, env) for v in value]
    return value


def _leaves(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: "{}"}
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_leaves(v, f"{prefix}[{i}]"))
        return out or {prefix: "[]"}
    return {prefix: repr(value)}


def _flatten(plan: Plan, env: str) -> dict[tuple[str, str], dict[str, str]]:
    return {
        (r.type, _normalise(r.name, env)): _leaves(_normalise(r.inputs, env))
        for r in plan.resources
        if r.custom
    }


def diff(left: Plan, left_env: str, right: Plan, right_env: str) -> list[Difference]:
    a, b = _flatten(left, left_env), _flatten(right, right_env)
    out: list[Difference] = []
    for key in sorted(a.keys() | b.keys()):
        la, lb = a.get(key), b.get(key)
        if la is None or lb is None:
            out.append(
                Difference(key[0], key[1], "", "present" if la else ABSENT, "present" if lb else ABSENT)
            )
            continue
        for path in sorted(la.keys() | lb.keys()):
            va, vb = la.get(path, ABSENT), lb.get(path, ABSENT)
            if va != vb:
                out.append(Difference(key[0], key[1], path, va, vb))
    return out


def load_allowlist(path: Path = ALLOWLIST) -> list[Allowed]:
    entries = yaml.safe_load(path.read_text())["allowed"]
    out = []
    for e in entries:
        if e["category"] not in CATEGORIES:
            raise ValueError(f"{path.name}: category {e['category']!r} is not one of {', '.join(CATEGORIES)}")
        out.append(Allowed(e["type"], e.get("name", "*"), e["path"], e["category"], e["why"]))
    return out


@dataclass(frozen=True)
class Verdict:
    unexpected: list[Difference]
    unused: list[Allowed]

    @property
    def ok(self) -> bool:
        return not self.unexpected and not self.unused


def judge(differences: list[Difference], allowlist: list[Allowed]) -> Verdict:
    """Every difference must be allowed, and every allowance must still be needed (no stale entries)."""
    unexpected = [d for d in differences if not any(a.covers(d) for a in allowlist)]
    unused = [a for a in allowlist if not any(a.covers(d) for d in differences)]
    return Verdict(unexpected, unused)
