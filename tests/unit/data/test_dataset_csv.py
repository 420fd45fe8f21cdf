"""SPIRA's CSV layout: schema, label set, path resolution, one error listing the first problems."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from training.data import DatasetError, Example, dataset_fingerprint, load_dataset_csv, load_noise_csv
from training.data.dataset import MAX_LISTED_PROBLEMS, fingerprint_lines


def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A dataset folder with three clips and a CSV using relative paths and an extra column."""
    root = tmp_path / "spira"
    for name in ("a.wav", "b.wav", "c.wav"):
        write(root / "clips" / name, f"bytes of {name}".encode())
    return write(
        root / "dataset.csv",
        "file_path,class,speaker\nclips/a.wav,0,s1\nclips/b.wav,1,s2\nclips/c.wav,1,s3\n",
    )


def test_relative_paths_are_resolved_against_the_csv_folder_not_the_working_directory(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # somewhere else than the CSV's folder
    examples = load_dataset_csv(dataset)
    assert examples == [
        Example(dataset.parent.resolve() / "clips" / "a.wav", 0),
        Example(dataset.parent.resolve() / "clips" / "b.wav", 1),
        Example(dataset.parent.resolve() / "clips" / "c.wav", 1),
    ]
    assert all(e.path.is_absolute() and e.path.is_file() for e in examples)


def test_absolute_paths_extra_columns_a_byte_order_mark_and_float_labels_are_accepted(tmp_path: Path) -> None:
    clip = write(tmp_path / "elsewhere" / "x.wav", b"x")
    csv_path = write(tmp_path / "d" / "data.csv", f"\ufeffid,file_path,notes,class\n7,{clip},hoarse,1.0\n")
    assert load_dataset_csv(csv_path) == [Example(clip, 1)]


def test_a_csv_with_missing_files_lists_the_first_problems_and_counts_all(tmp_path: Path) -> None:
    lines = [f"clips/missing_{i:02d}.wav,{i % 2}" for i in range(15)]
    csv_path = write(tmp_path / "dataset.csv", "file_path,class\n" + "\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as caught:
        load_dataset_csv(csv_path)
    message = str(caught.value)
    assert message.splitlines()[0].startswith(f"{csv_path}: 15 problems in 15 rows (15 missing files)")
    assert f"the first {MAX_LISTED_PROBLEMS}" in message
    assert "line 2: missing file: clips/missing_00.wav" in message
    assert f"missing_{MAX_LISTED_PROBLEMS - 1:02d}.wav" in message
    assert f"missing_{MAX_LISTED_PROBLEMS:02d}.wav" not in message  # only the first ones are listed
    assert caught.value.counts == {"missing file": 15}


def test_unknown_labels_and_missing_files_are_reported_together_with_their_lines(tmp_path: Path) -> None:
    write(tmp_path / "ok.wav", b"ok")
    csv_path = write(
        tmp_path / "d.csv", "file_path,class\nok.wav,0\nok.wav,2\nnope.wav,1\nok.wav,patient\n,0\n"
    )
    with pytest.raises(DatasetError) as caught:
        load_dataset_csv(csv_path)
    message = str(caught.value)
    assert "4 problems in 5 rows" in message
    assert "line 3: unknown label: '2' (expected 0 = control, 1 = patient)" in message
    assert "line 4: missing file: nope.wav" in message
    assert "line 5: unknown label: 'patient'" in message
    assert "line 6: empty path" in message
    assert caught.value.counts == {"unknown label": 2, "missing file": 1, "empty path": 1}


def test_one_file_labelled_both_control_and_patient_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "clips" / "a.wav", b"a")
    csv_path = write(tmp_path / "d.csv", "file_path,class\nclips/a.wav,0\nclips/../clips/a.wav,1\n")
    with pytest.raises(DatasetError, match=r"line 3: conflicting label: .* labelled 1 here and 0 on line 2"):
        load_dataset_csv(csv_path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "empty CSV: expected a header with columns file_path, class"),
        ("file_path,class\n", "empty CSV: a header but no rows"),
        ("\n\n", "empty CSV"),
        ("path,label\na.wav,0\n", "missing column(s) file_path, class; found columns: path, label"),
        ("file_path,diagnosis\na.wav,0\n", "missing column(s) class; found columns: file_path, diagnosis"),
    ],
)
def test_an_empty_csv_or_missing_columns_raise_one_clear_error(
    tmp_path: Path, content: str, expected: str
) -> None:
    csv_path = write(tmp_path / "d.csv", content)
    with pytest.raises(DatasetError) as caught:
        load_dataset_csv(csv_path)
    assert expected in str(caught.value)
    assert str(csv_path) in str(caught.value)


def test_a_csv_that_does_not_exist_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="CSV file not found"):
        load_dataset_csv(tmp_path / "nope.csv")


def test_the_noise_csv_lists_paths_resolved_against_its_folder(tmp_path: Path) -> None:
    beep = write(tmp_path / "noise" / "beep.wav", b"beep")
    csv_path = write(tmp_path / "noise.csv", "file_path,kind\nnoise/beep.wav,monitor\n")
    assert load_noise_csv(csv_path) == [beep.resolve()]


def test_a_noise_csv_without_the_file_path_column_or_with_missing_files_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="missing column"):
        load_noise_csv(write(tmp_path / "a.csv", "path\nx.wav\n"))
    with pytest.raises(DatasetError, match=r"line 2: missing file: x\.wav"):
        load_noise_csv(write(tmp_path / "b.csv", "file_path\nx.wav\n"))


def test_the_fingerprint_ignores_row_order_and_location_but_not_bytes_or_labels(
    dataset: Path, tmp_path: Path
) -> None:
    examples = load_dataset_csv(dataset)
    fingerprint = dataset_fingerprint(examples)
    assert fingerprint == dataset_fingerprint(list(reversed(examples)))

    moved = tmp_path / "moved"
    dataset.parent.rename(moved)
    moved_examples = load_dataset_csv(moved / "dataset.csv")
    assert dataset_fingerprint(moved_examples) == fingerprint

    relabelled = [Example(e.path, 1 - e.label) if i == 0 else e for i, e in enumerate(moved_examples)]
    assert dataset_fingerprint(relabelled) != fingerprint
    moved_examples[0].path.write_bytes(b"one sample changed")
    assert dataset_fingerprint(moved_examples) != fingerprint


def test_the_fingerprint_is_a_stable_sha256_of_sorted_content_and_labels() -> None:
    # spelled out here: a change in the definition silently invalidates every cached pipeline stage
    items = [("bb", 1), ("aa", 0)]
    expected = hashlib.sha256(b"spira-dataset-v1\naa:0\nbb:1").hexdigest()
    assert fingerprint_lines(items) == expected
    assert fingerprint_lines(list(reversed(items))) == expected
