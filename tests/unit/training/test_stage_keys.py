"""Stage keys cover the code each stage runs: no hand-kept module lists, so no stale cache."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.training.conftest import TinyData, make_pipeline
from training import artifacts
from training.pipeline import STAGE_NAMES, STAGES

REPO = Path(__file__).resolve().parents[3]


def _keys(data: TinyData) -> dict[str, str]:
    pipeline = make_pipeline(data)
    return {name: pipeline.key(name) for name in STAGE_NAMES}


def _edited(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """As if `module`'s file had been edited on disk (the key cache starts afresh, as a new process)."""
    real = artifacts.module_source
    monkeypatch.setattr(
        artifacts, "module_source", lambda name: real(name) + (b"\n# edited\n" if name == module else b"")
    )
    artifacts._code_version.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_code_versions():
    artifacts._code_version.cache_clear()
    yield
    artifacts._code_version.cache_clear()


def test_each_stage_key_covers_the_modules_its_module_imports_through_others_too() -> None:
    by_name = {s.name: set(s.code_modules()) for s in STAGES}
    # features splits the data with training.data.splits (reached through the training.data package)
    assert {"training.data.splits", "spira_core.features", "spira_core.audio"} <= by_name["features"]
    # train derives its seeds in training.ports (RandomSource.numpy / int_seed)
    assert {"training.ports", "spira_core.model", "training.fast_layers"} <= by_name["train"]
    assert "training.metrics" in by_name["evaluate"] and "training.metrics" not in by_name["train"]
    assert all(
        name.split(".")[0] in ("spira_core", "training") for names in by_name.values() for name in names
    )


@pytest.mark.parametrize(
    ("module", "first_changed"),
    [
        ("training.data.splits", "features"),
        ("spira_core.augment", "features"),
        ("training.ports", "features"),
        ("training.fast_layers", "train"),
        ("training.metrics", "evaluate"),
        ("training.stages.publish", "publish"),
    ],
)
def test_editing_a_module_changes_the_keys_of_the_stages_that_import_it_and_after_and_nothing_else(
    tiny_data: TinyData, monkeypatch: pytest.MonkeyPatch, module: str, first_changed: str
) -> None:
    before = _keys(tiny_data)
    _edited(monkeypatch, module)
    after = _keys(tiny_data)
    first = STAGE_NAMES.index(first_changed)
    assert [before[n] == after[n] for n in STAGE_NAMES] == [i < first for i in range(len(STAGE_NAMES))]


def test_an_edit_of_the_split_module_reruns_features_instead_of_reusing_the_old_output(
    tiny_data: TinyData, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes.training import InMemoryStore

    store = InMemoryStore()
    assert not make_pipeline(tiny_data, store).run("features").skipped
    assert make_pipeline(tiny_data, store).run("features").skipped
    _edited(monkeypatch, "training.data.splits")
    assert not make_pipeline(tiny_data, store).run("features").skipped


_PRINT_KEYS = """
import json, sys
from pathlib import Path
from training.adapters.memory import MemoryStore
from training.adapters.system import SeededRandom, SystemClock
from training.pipeline import STAGE_NAMES, Pipeline
from training.presets import get_preset

preset = get_preset("exp3.5")
pipeline = Pipeline.from_csv(
    Path(sys.argv[1]), Path(sys.argv[2]), store=MemoryStore(), clock=SystemClock(),
    random=SeededRandom(preset.seed), preset=preset, registry_factory=lambda: (None, "memory://"),
)
print(json.dumps({name: pipeline.key(name) for name in STAGE_NAMES}))
"""


def test_a_real_edit_of_training_data_splits_gives_features_and_every_later_stage_a_new_key(
    tiny_data: TinyData, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    for package in ("spira_core", "training"):
        shutil.copytree(REPO / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))

    def keys() -> dict[str, str]:
        out = subprocess.run(
            [sys.executable, "-c", _PRINT_KEYS, str(tiny_data.dataset_csv), str(tiny_data.noise_csv)],
            cwd=tree,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    before = keys()
    splits = tree / "training" / "data" / "splits.py"
    splits.write_text(splits.read_text() + "\n# a reviewer's edit\n")
    after = keys()
    assert all(before[name] != after[name] for name in STAGE_NAMES), (before, after)
