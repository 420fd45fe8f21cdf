"""Seeded, stratified train/validation/test splits with no recording in two splits.

Leakage is checked by content, not only by path: SPIRA's collections were assembled from several sources,
so one recording can appear under two names. Examples with identical bytes form one group that goes to a
single split, and only one copy of it is kept. The split depends on the set of examples and the seed, not
on the order of the CSV's rows.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from training.data.dataset import LABELS, DatasetError, Example, file_sha256

DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


@dataclass(frozen=True)
class Splits:
    train: tuple[Example, ...]
    val: tuple[Example, ...]
    test: tuple[Example, ...]
    # copies of a recording already kept in some split (same bytes under another path), left out
    duplicates: tuple[Example, ...] = ()

    def as_dict(self) -> dict[str, tuple[Example, ...]]:
        return {"train": self.train, "val": self.val, "test": self.test}


def _validate_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3:
        raise ValueError(f"fractions must be (train, val, test), got {tuple(fractions)}")
    train, val, test = (float(f) for f in fractions)
    if train <= 0 or val < 0 or test < 0 or abs(train + val + test - 1.0) > 1e-6:
        raise ValueError(f"fractions must be >= 0 with train > 0 and sum to 1, got {tuple(fractions)}")
    return train, val, test


def _allocate(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Group counts per split for one class: rounded shares, at least one each where n allows."""
    _, f_val, f_test = fractions
    n_val = round(n * f_val)
    n_test = round(n * f_test)
    # a class with a handful of recordings still reaches every requested split (train first, then test,
    # then val: a metric on a test split without one class is undefined, validation tolerates it better)
    if n >= 3:
        n_val = max(n_val, 1 if f_val > 0 else 0)
        n_test = max(n_test, 1 if f_test > 0 else 0)
    elif n == 2:
        n_val, n_test = 0, (1 if f_test > 0 else 0)
        if n_test == 0 and f_val > 0:
            n_val = 1
    else:
        n_val = n_test = 0
    while n_val + n_test > max(n - 1, 0):
        if n_val >= n_test and n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def stratified_split(
    examples: Sequence[Example],
    seed: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    content_key: Callable[[Example], str] | None = None,
) -> Splits:
    """Split ``examples`` per class into train/val/test by ``fractions``, reproducibly for ``seed``.

    ``content_key`` maps an example to a key that is equal for duplicate recordings; by default the
    sha256 of the file's bytes (tests may pass a pure function instead).
    """
    fracs = _validate_fractions(fractions)
    key_of = content_key or (lambda e: file_sha256(e.path))

    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        groups[key_of(example)].append(example)

    conflicts = []
    by_class: dict[int, list[str]] = defaultdict(list)
    for key, members in groups.items():
        labels = {m.label for m in members}
        if len(labels) > 1:
            paths = ", ".join(sorted(f"{m.path} ({m.label})" for m in members))
            conflicts.append(f"the same recording carries both labels: {paths}")
            continue
        by_class[members[0].label].append(key)
    if conflicts:
        raise DatasetError("stratified_split", conflicts)

    rng = random.Random(seed)
    chosen: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    duplicates: list[Example] = []
    for label in sorted(by_class):
        if label not in LABELS:
            raise DatasetError(
                "stratified_split", [f"unknown label {label} (expected one of {sorted(LABELS)})"]
            )
        # sorted first, so the outcome depends on the set of recordings and the seed, not on row order
        keys = sorted(by_class[label])
        rng.shuffle(keys)
        n_train, n_val, _ = _allocate(len(keys), fracs)
        bounds = {
            "train": keys[:n_train],
            "val": keys[n_train : n_train + n_val],
            "test": keys[n_train + n_val :],
        }
        for split, split_keys in bounds.items():
            for key in split_keys:
                members = sorted(groups[key], key=lambda e: str(e.path))
                chosen[split].append(members[0])
                duplicates.extend(members[1:])

    def ordered(items: list[Example]) -> tuple[Example, ...]:
        return tuple(sorted(items, key=lambda e: str(e.path)))

    return Splits(
        train=ordered(chosen["train"]),
        val=ordered(chosen["val"]),
        test=ordered(chosen["test"]),
        duplicates=ordered(duplicates),
    )
