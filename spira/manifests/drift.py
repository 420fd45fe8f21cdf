"""The drift guard: rendered environments may differ only at the allowlisted paths.

Objects are flattened to (path -> value) with list items keyed by their `name` where every item has one
(containers, env, args, metrics), so an allowlist entry names an item, not a position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Doc = dict[str, Any]
Step = str | int | tuple[str, str]
Path = tuple[Step, ...]
Identity = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


@dataclass(frozen=True)
class Allowed:
    kind: str
    name: str
    path: Path
    why: str


@dataclass(frozen=True)
class Difference:
    identity: Identity
    path: Path
    left: Any
    right: Any

    def __str__(self) -> str:
        _api, kind, _, name = self.identity
        return f"{kind}/{name} {format_path(self.path)}: {self.left!r} != {self.right!r}"


MISSING = "<absent>"


def format_path(path: Path) -> str:
    out = []
    for step in path:
        if isinstance(step, tuple):
            out.append(f"[{step[0]}={step[1]}]")
        elif isinstance(step, int):
            out.append(f"[{step}]")
        else:
            out.append(("." if out else "") + step)
    return "".join(out) or "(object)"


def parse_allowlist(raw: dict[str, Any]) -> list[Allowed]:
    entries = []
    for entry in raw.get("allowed", []):
        steps: list[Step] = []
        for step in entry["path"]:
            if isinstance(step, dict):
                ((key, value),) = step.items()
                steps.append((str(key), str(value)))
            elif isinstance(step, int):  # an item of a list whose items have no name, by position
                steps.append(step)
            else:
                steps.append(str(step))
        if not entry.get("why"):
            raise ValueError(f"allowlist entry {entry} has no `why`")
        entries.append(Allowed(entry["kind"], entry["name"], tuple(steps), entry["why"]))
    return entries


def _keyed(items: list[Any]) -> bool:
    names = [i.get("name") for i in items if isinstance(i, dict)]
    return len(names) == len(items) and None not in names and len(set(names)) == len(names)


def flatten(value: Any, prefix: Path = ()) -> dict[Path, Any]:
    if isinstance(value, dict):
        if not value:
            return {prefix: {}}
        out: dict[Path, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, (*prefix, str(key))))
        return out
    if isinstance(value, list):
        if not value:
            return {prefix: []}
        out = {}
        if _keyed(value):
            for item in value:
                out.update(flatten(item, (*prefix, ("name", str(item["name"])))))
        else:
            for i, item in enumerate(value):
                out.update(flatten(item, (*prefix, i)))
        return out
    return {prefix: value}


def identity(doc: Doc) -> Identity:
    meta = doc.get("metadata", {})
    return (doc.get("apiVersion", ""), doc.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))


def differences(left: list[Doc], right: list[Doc]) -> list[Difference]:
    lmap = {identity(d): d for d in left}
    rmap = {identity(d): d for d in right}
    out = []
    for ident in sorted(lmap.keys() | rmap.keys()):
        if ident not in lmap or ident not in rmap:
            out.append(
                Difference(
                    ident,
                    (),
                    "present" if ident in lmap else MISSING,
                    "present" if ident in rmap else MISSING,
                )
            )
            continue
        lflat, rflat = flatten(lmap[ident]), flatten(rmap[ident])
        for path in sorted(lflat.keys() | rflat.keys(), key=repr):
            lval, rval = lflat.get(path, MISSING), rflat.get(path, MISSING)
            if lval != rval:
                out.append(Difference(ident, path, lval, rval))
    return out


def allowed(diff: Difference, allowlist: list[Allowed]) -> bool:
    _, kind, _, name = diff.identity
    return any(
        a.kind == kind
        and a.name == name
        and len(diff.path) >= len(a.path)
        and diff.path[: len(a.path)] == a.path
        for a in allowlist
    )


def drift(left: list[Doc], right: list[Doc], allowlist: list[Allowed]) -> list[Difference]:
    """Differences between two rendered environments that the allowlist does not permit."""
    return [d for d in differences(left, right) if not allowed(d, allowlist)]
