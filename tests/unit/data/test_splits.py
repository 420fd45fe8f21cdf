"""Stratified, seeded splits: no recording (by path or by content) in two splits, both classes everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.data import DatasetError, Example, Splits, stratified_split


def examples(n_control: int, n_patient: int) -> list[Example]:
    return [Example(Path(f"/d/c{i:03d}.wav"), 0) for i in range(n_control)] + [
        Example(Path(f"/d/p{i:03d}.wav"), 1) for i in range(n_patient)
    ]


def by_path(example: Example) -> str:
    """Content key for tests: every path is a distinct recording (no file I/O)."""
    return str(example.path)


def all_of(splits: Splits) -> list[Example]:
    return [*splits.train, *splits.val, *splits.test]


def test_no_recording_lands_in_two_splits_and_none_is_lost() -> None:
    data = examples(60, 40)
    splits = stratified_split(data, seed=1, content_key=by_path)
    assert len(all_of(splits)) == len(set(all_of(splits))) == 100
    assert set(all_of(splits)) == set(data)
    assert not set(splits.train) & set(splits.val)
    assert not set(splits.train) & set(splits.test)
    assert not set(splits.val) & set(splits.test)


def test_each_split_keeps_the_class_proportions() -> None:
    splits = stratified_split(examples(60, 40), seed=7, content_key=by_path)
    counts = {
        name: (sum(e.label == 0 for e in s), sum(e.label == 1 for e in s))
        for name, s in splits.as_dict().items()
    }
    assert counts == {"train": (42, 28), "val": (9, 6), "test": (9, 6)}


def test_the_same_seed_gives_the_same_splits_whatever_the_row_order() -> None:
    data = examples(30, 30)
    first = stratified_split(data, seed=5, content_key=by_path)
    assert stratified_split(list(reversed(data)), seed=5, content_key=by_path) == first
    assert stratified_split(data, seed=6, content_key=by_path) != first


def test_copies_of_one_recording_under_two_names_stay_in_one_split_and_only_one_copy_is_kept(
    tmp_path: Path,
) -> None:
    # the default content key hashes the files' bytes
    data = []
    for i in range(12):
        label = i % 2
        path = tmp_path / f"clip_{i:02d}.wav"
        path.write_bytes(f"recording {i}".encode())
        data.append(Example(path, label))
    copy = tmp_path / "renamed_copy_of_clip_03.wav"
    copy.write_bytes(b"recording 3")
    data.append(Example(copy, 1))

    for seed in range(10):
        splits = stratified_split(data, seed=seed)
        kept = {e.path for e in all_of(splits)}
        assert len(kept & {data[3].path, copy}) == 1
        assert [e.path for e in splits.duplicates] == [max(data[3].path, copy, key=str)]
        assert len(all_of(splits)) == 12


def test_one_recording_labelled_both_ways_is_refused() -> None:
    data = [Example(Path("/d/a.wav"), 0), Example(Path("/d/copy_of_a.wav"), 1), *examples(5, 5)]
    with pytest.raises(DatasetError, match="the same recording carries both labels"):
        stratified_split(data, seed=0, content_key=lambda e: "same" if "a.wav" in e.path.name else by_path(e))


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.7, 0.2, 0.2), (0.0, 0.5, 0.5), (0.8, -0.1, 0.3)])
def test_fractions_must_be_three_non_negative_shares_summing_to_one(fractions: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="fractions"):
        stratified_split(examples(5, 5), seed=0, fractions=fractions, content_key=by_path)


def test_a_tiny_dataset_still_puts_both_classes_in_every_split() -> None:
    splits = stratified_split(examples(3, 3), seed=0, content_key=by_path)
    for name, split in splits.as_dict().items():
        assert {e.label for e in split} == {0, 1}, name


@settings(max_examples=60, deadline=None)
@given(
    n_control=st.integers(0, 40),
    n_patient=st.integers(0, 40),
    seed=st.integers(0, 2**32 - 1),
    fractions=st.sampled_from([(0.7, 0.15, 0.15), (0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (0.9, 0.0, 0.1)]),
)
def test_any_dataset_is_partitioned_without_leakage_and_with_both_classes_where_possible(
    n_control: int, n_patient: int, seed: int, fractions: tuple[float, float, float]
) -> None:
    data = examples(n_control, n_patient)
    splits = stratified_split(data, seed=seed, fractions=fractions, content_key=by_path)
    assert sorted(all_of(splits), key=by_path) == sorted(data, key=by_path)
    for label, n in ((0, n_control), (1, n_patient)):
        in_train = sum(e.label == label for e in splits.train)
        assert in_train >= min(n, 1)  # training never misses a class that exists
        if n >= 3:
            for name, split in splits.as_dict().items():
                wanted = dict(zip(("train", "val", "test"), fractions, strict=True))[name] > 0
                assert any(e.label == label for e in split) == wanted, (name, label)
