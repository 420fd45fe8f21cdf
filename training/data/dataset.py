"""SPIRA's dataset CSV layout: one row per recording, ``file_path,class`` (0 = control, 1 = patient).

Extra columns are allowed and ignored; relative paths are resolved against the CSV's own folder, so a dataset
folder can be moved or mounted anywhere. A CSV that cannot be used raises ONE :class:`DatasetError` listing
the first problems and counting all of them, so a user fixes the whole file in one pass instead of one
error per run.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

LABELS: Mapping[int, str] = {0: "control", 1: "patient"}
PATH_COLUMN = "file_path"
LABEL_COLUMN = "class"
# Enough to show the pattern of a broken CSV without flooding a terminal.
MAX_LISTED_PROBLEMS = 10
FINGERPRINT_VERSION = "spira-dataset-v1"


@dataclass(frozen=True)
class Example:
    """One labelled recording; ``path`` is absolute once loaded from a CSV."""

    path: Path
    label: int


@dataclass(frozen=True)
class Problem:
    kind: str  # short category, counted in the error summary ("missing file", "unknown label", ...)
    line: int  # 1-based line in the CSV (the header is line 1)
    detail: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.kind}: {self.detail}"


class DatasetError(ValueError):
    """A dataset or noise CSV that cannot be used as it is; the message lists the first problems."""

    def __init__(self, source: str, problems: Iterable[Problem | str], rows: int | None = None) -> None:
        self.source = source
        self.problems: tuple[Problem | str, ...] = tuple(problems)
        self.rows = rows
        self.counts: dict[str, int] = dict(
            Counter(p.kind if isinstance(p, Problem) else "error" for p in self.problems)
        )
        super().__init__(self._message())

    def _message(self) -> str:
        n = len(self.problems)
        if n == 1 and not isinstance(self.problems[0], Problem):
            return f"{self.source}: {self.problems[0]}"
        counts = ", ".join(f"{c} {kind}{'s' if c > 1 else ''}" for kind, c in sorted(self.counts.items()))
        in_rows = f" in {self.rows} rows" if self.rows is not None else ""
        shown = self.problems[:MAX_LISTED_PROBLEMS]
        head = f"{self.source}: {n} problem{'s' if n > 1 else ''}{in_rows} ({counts})"
        if n > len(shown):
            head += f"; the first {len(shown)}:"
        else:
            head += ":"
        return "\n".join([head, *(f"  {p}" for p in shown)])


def _read_rows(csv_path: Path, required: tuple[str, ...]) -> tuple[list[dict[str, str]], Path]:
    """Rows of a CSV as dicts with stripped keys/values; structural problems raise at once."""
    source = str(csv_path)
    if not csv_path.is_file():
        raise DatasetError(source, ["CSV file not found"])
    # utf-8-sig: spreadsheets often save CSVs with a byte-order mark that would glue itself to "file_path"
    text = csv_path.read_text(encoding="utf-8-sig")
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or not any(h.strip() for h in header):
        raise DatasetError(source, [f"empty CSV: expected a header with columns {', '.join(required)}"])
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetError(
            source,
            [f"missing column(s) {', '.join(missing)}; found columns: {', '.join(header)}"],
        )
    rows: list[dict[str, str]] = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue  # blank lines are harmless (a trailing newline in a hand-edited file)
        row = {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)}
        row["__line__"] = str(reader.line_num)
        rows.append(row)
    if not rows:
        raise DatasetError(source, ["empty CSV: a header but no rows"])
    return rows, csv_path.resolve().parent


def _resolve(value: str, base_dir: Path) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    # normpath folds "a/../b" so two spellings of one file compare (and dedupe) equal
    return Path(os.path.normpath(path))


def _path_problems(row: dict[str, str], base_dir: Path) -> tuple[Path | None, list[Problem]]:
    line = int(row["__line__"])
    value = row[PATH_COLUMN]
    if not value:
        return None, [Problem("empty path", line, f"no value in column {PATH_COLUMN}")]
    path = _resolve(value, base_dir)
    if not path.is_file():
        return path, [Problem("missing file", line, f"{value} (resolved to {path})")]
    return path, []


def parse_label(value: str) -> int | None:
    """``0``/``1`` as written by SPIRA's scripts (also ``0.0``/``1.0`` as pandas writes float columns)."""
    try:
        number = float(value)
    except ValueError:
        return None
    if number.is_integer() and int(number) in LABELS:
        return int(number)
    return None


def load_dataset_csv(csv_path: Path | str) -> list[Example]:
    """Examples from a SPIRA dataset CSV, in file order; raises :class:`DatasetError` listing problems."""
    csv_path = Path(csv_path)
    rows, base_dir = _read_rows(csv_path, (PATH_COLUMN, LABEL_COLUMN))
    problems: list[Problem] = []
    examples: list[Example] = []
    first_seen: dict[Path, tuple[int, int]] = {}  # path -> (line, label)
    for row in rows:
        line = int(row["__line__"])
        path, path_problems = _path_problems(row, base_dir)
        problems.extend(path_problems)
        label = parse_label(row[LABEL_COLUMN])
        if label is None:
            expected = ", ".join(f"{k} = {v}" for k, v in LABELS.items())
            problems.append(Problem("unknown label", line, f"{row[LABEL_COLUMN]!r} (expected {expected})"))
        if path is None or label is None or path_problems:
            continue
        if path in first_seen and first_seen[path][1] != label:
            seen_line, seen_label = first_seen[path]
            problems.append(
                Problem(
                    "conflicting label",
                    line,
                    f"{row[PATH_COLUMN]} is labelled {label} here and {seen_label} on line {seen_line}",
                )
            )
            continue
        first_seen.setdefault(path, (line, label))
        examples.append(Example(path=path, label=label))
    if problems:
        raise DatasetError(str(csv_path), problems, rows=len(rows))
    return examples


def load_noise_csv(csv_path: Path | str) -> list[Path]:
    """Noise clip paths from a noise CSV (column ``file_path``), in file order."""
    csv_path = Path(csv_path)
    rows, base_dir = _read_rows(csv_path, (PATH_COLUMN,))
    problems: list[Problem] = []
    paths: list[Path] = []
    for row in rows:
        path, path_problems = _path_problems(row, base_dir)
        problems.extend(path_problems)
        if path is not None and not path_problems:
            paths.append(path)
    if problems:
        raise DatasetError(str(csv_path), problems, rows=len(rows))
    return paths


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint_lines(items: Iterable[tuple[str, int]]) -> str:
    """Order-independent digest of (content hash, label) pairs: pure, so it is testable without files."""
    digest = hashlib.sha256(FINGERPRINT_VERSION.encode())
    for content, label in sorted(items):
        digest.update(f"\n{content}:{label}".encode())
    return digest.hexdigest()


def dataset_fingerprint(examples: Iterable[Example]) -> str:
    """sha256 over every file's bytes and label, independent of row order and of where the files live.

    Moving a dataset folder keeps its fingerprint; changing one sample or one label changes it.
    """
    return fingerprint_lines((file_sha256(e.path), e.label) for e in examples)
