"""The frozen holdout's manifest: its CSV, its content hash and version, and its strata (pure: text in).

A frozen holdout is a folder (locally, or `holdout/<version>/` in the features bucket) holding `dataset.csv`
and the audio it lists. The CSV is SPIRA's dataset layout plus the columns that name every recording's
condition, written once by `spira holdout freeze`:

    file_path,class,sha256,sample_rate,channels,noise[,site]

The holdout's hash is the sha256 of its sorted (content hash, label, condition) lines: independent of row
order, file names and where the folder lives, and changed by any recording, label or condition. Its version
(`h` + the first 12 hex digits) is recorded with every evaluation, so two models are only compared on the
same holdout.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field

COLUMNS = ("file_path", "class", "sha256", "sample_rate", "channels", "noise")
OPTIONAL = ("site",)
# The recording conditions the gate judges separately, in report order (site only when the data has one).
STRATA = ("sample_rate", "channels", "noise", "site")
CLEAN, HOSPITAL_NOISE = "clean", "hospital"


class HoldoutError(ValueError):
    pass


@dataclass(frozen=True)
class HoldoutItem:
    file_path: str  # as written in the CSV (relative to its folder)
    sha256: str
    label: int
    condition: dict[str, str] = field(default_factory=dict)  # stratum name -> value

    def line(self) -> str:
        return "\t".join([self.sha256, str(self.label), *(self.condition.get(s, "") for s in STRATA)])


@dataclass(frozen=True)
class Holdout:
    items: tuple[HoldoutItem, ...]
    sha256: str

    @property
    def version(self) -> str:
        return "h" + self.sha256[:12]

    @property
    def labels(self) -> list[int]:
        return [i.label for i in self.items]

    def summary(self) -> dict[str, object]:
        return {
            "version": self.version,
            "sha256": self.sha256,
            "n": len(self.items),
            "patients": sum(self.labels),
            "controls": len(self.items) - sum(self.labels),
        }


def holdout_hash(items: tuple[HoldoutItem, ...] | list[HoldoutItem]) -> str:
    return hashlib.sha256("\n".join(sorted(i.line() for i in items)).encode()).hexdigest()


def make(items: list[HoldoutItem]) -> Holdout:
    if not items:
        raise HoldoutError("a holdout needs at least one recording")
    seen: dict[str, int] = {}
    for item in items:
        if seen.setdefault(item.sha256, item.label) != item.label:
            raise HoldoutError(f"one recording ({item.sha256[:12]}) is labelled both ways")
    ordered = tuple(sorted(items, key=lambda i: (i.sha256, i.line())))
    return Holdout(ordered, holdout_hash(ordered))


def to_csv(holdout: Holdout) -> str:
    has_site = any("site" in i.condition for i in holdout.items)
    columns = [*COLUMNS, *(["site"] if has_site else [])]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for i in holdout.items:
        values = {"file_path": i.file_path, "class": i.label, "sha256": i.sha256, **i.condition}
        writer.writerow([values.get(c, "") for c in columns])
    return out.getvalue()


def parse_csv(text: str, source: str = "<holdout>") -> Holdout:
    """A frozen holdout's CSV; HoldoutError naming the line for anything else (a plain dataset CSV lacks
    the condition columns: freeze it first)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise HoldoutError(
            f"{source} is not a frozen holdout (no column {', '.join(missing)}): run 'spira holdout freeze'"
        )
    items = []
    for line, row in enumerate(reader, start=2):
        if not any((v or "").strip() for v in row.values()):
            continue
        label = (row["class"] or "").strip()
        digest = (row["sha256"] or "").strip().lower()
        if label not in ("0", "1"):
            raise HoldoutError(f"{source} line {line}: class must be 0 or 1, got {label!r}")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise HoldoutError(f"{source} line {line}: sha256 is not a sha256 hex digest")
        condition = {s: (row.get(s) or "").strip() for s in STRATA if (row.get(s) or "").strip()}
        items.append(HoldoutItem(row["file_path"].strip(), digest, int(label), condition))
    try:
        return make(items)
    except HoldoutError as exc:
        raise HoldoutError(f"{source}: {exc}") from exc
