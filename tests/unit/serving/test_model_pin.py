"""The served model is pinned in git by version and bundle hash; every hand-over refuses another bundle."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ci.build import verify_bento
from serving.pin import MODEL_NAME, PIN_FILE, ModelPin, PinMismatch, verified_bundle_dir
from spira_core.model import ModelBundle, SpiraConvV2, bundle_digest, save_bundle
from spira_core.params import FeatureParams

REPO = Path(__file__).resolve().parents[3]


def _bundle(directory: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    params = FeatureParams()
    save_bundle(ModelBundle(SpiraConvV2(input_frames=params.input_frames), params, 0.5, {}), directory)
    return directory


def _pin(bundle_dir: Path, version: str = "3") -> ModelPin:
    return ModelPin(MODEL_NAME, version, bundle_digest(bundle_dir), version, "run-1", "train/abc/model")


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_the_pin_in_git_names_a_version_a_bundle_hash_and_where_the_bundle_is_stored() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", str(PIN_FILE.relative_to(REPO))], cwd=REPO, capture_output=True
    )
    assert tracked.returncode == 0, "serving/model.lock.json is not committed"
    pin = ModelPin.read(PIN_FILE)
    assert pin.name == MODEL_NAME and pin.mlflow_version.isdigit()
    assert re.fullmatch(r"[0-9a-f]{64}", pin.bundle_sha256)
    assert re.fullmatch(r"train/[0-9a-f]{24}/model", pin.bundle_key)
    assert pin.resolved_from != "latest"


def test_the_pinned_bundle_passes_and_one_changed_bit_is_refused_naming_both_hashes(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b")
    pin = _pin(bundle)
    pin.verify(bundle)
    _tamper(bundle / "weights.bin")
    with pytest.raises(PinMismatch, match=pin.bundle_sha256) as refused:
        pin.verify(bundle)
    assert bundle_digest(bundle) in str(refused.value)


def test_a_renamed_or_extra_file_in_the_bundle_is_refused_too(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b")
    pin = _pin(bundle)
    (bundle / "notes.txt").write_text("x")
    with pytest.raises(PinMismatch):
        pin.verify(bundle)


def test_two_stacks_version_1_get_different_bento_tags_because_the_tag_names_the_hash(tmp_path: Path) -> None:
    first, second = _pin(_bundle(tmp_path / "a", 0), "1"), _pin(_bundle(tmp_path / "b", 1), "1")
    assert first.bento_tag != second.bento_tag
    assert first.bento_tag.startswith(f"{MODEL_NAME}:mlflow-v1-")


def test_a_pin_written_before_the_bundle_location_was_recorded_still_reads(tmp_path: Path) -> None:
    old = {k: v for k, v in _pin(_bundle(tmp_path / "b")).__dict__.items() if k != "bundle_key"}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert ModelPin.read(tmp_path / "old.json").bundle_key == ""


def _python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """This interpreter in a child process (BentoML reads BENTOML_HOME once, at import)."""
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )


def _stored_model(model_dir: Path, pin: ModelPin, bundle: Path) -> None:
    """A model directory as the import writes it into the BentoML store: bundle/ and meta.json."""
    import shutil

    shutil.copytree(bundle, model_dir / "bundle")
    (model_dir / "meta.json").write_text(
        json.dumps({"model_version": pin.mlflow_version, "bundle_sha256": pin.bundle_sha256})
    )


def test_the_server_refuses_to_start_on_a_bundle_changed_after_it_was_imported(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b")
    pin = _pin(bundle)
    _stored_model(tmp_path / "model", pin, bundle)
    assert verified_bundle_dir(tmp_path / "model") == tmp_path / "model" / "bundle"
    _tamper(tmp_path / "model" / "bundle" / "weights.bin")
    with pytest.raises(PinMismatch, match="refusing the model"):
        verified_bundle_dir(tmp_path / "model")


def _exported_bento(root: Path, pin: ModelPin, bundle: Path) -> Path:
    name, _, version = pin.bento_tag.partition(":")
    (root / "src" / "serving").mkdir(parents=True)
    pin.write(root / "src" / "serving" / "model.lock.json")
    _stored_model(root / "models" / name / version, pin, bundle)
    return root


def test_the_image_build_refuses_a_bento_whose_model_is_not_its_pinned_bundle(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b")
    pin = _pin(bundle)
    bento = _exported_bento(tmp_path / "bento", pin, bundle)
    verify_bento(bento)
    name, _, version = pin.bento_tag.partition(":")
    _tamper(bento / "models" / name / version / "bundle" / "weights.bin")
    with pytest.raises(PinMismatch):
        verify_bento(bento)


def test_the_image_build_refuses_a_bento_packed_with_another_pin_than_its_model(tmp_path: Path) -> None:
    bundle, other = _bundle(tmp_path / "b", 0), _bundle(tmp_path / "o", 1)
    pin = _pin(bundle)
    bento = _exported_bento(tmp_path / "bento", pin, bundle)
    # the Bento's pin now names another bundle (same tag: a hand-edited lock file)
    replace(pin, bundle_sha256=bundle_digest(other)).write(bento / "src" / "serving" / "model.lock.json")
    with pytest.raises((PinMismatch, FileNotFoundError)):
        verify_bento(bento)


_STORE_AND_TAMPER = """
import sys
from pathlib import Path
from serving.pin import ModelPin
from spira.bento.model_import import store_bundle
import bentoml

pin = ModelPin.read(Path(sys.argv[1]))
store_bundle(pin, Path(sys.argv[2]), source="test")
weights = Path(bentoml.models.get(pin.bento_tag).path) / "bundle" / "weights.bin"
data = bytearray(weights.read_bytes()); data[100] ^= 1; weights.write_bytes(bytes(data))
"""


def test_spira_bento_build_refuses_a_stored_model_that_is_not_the_pinned_bundle(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b")
    _pin(bundle).write(tmp_path / "pin.json")
    env = {
        **os.environ,
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "SPIRA_MODEL_PIN": str(tmp_path / "pin.json"),
        "PYTHONPATH": str(REPO),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    stored = _python(["-c", _STORE_AND_TAMPER, str(tmp_path / "pin.json"), str(bundle)], env)
    assert stored.returncode == 0, stored.stderr
    build = _python(["-m", "spira.cli", "bento", "build", "--export-dir", str(tmp_path / "out")], env)
    assert build.returncode == 2, build.stdout + build.stderr
    assert "refusing the stored model" in build.stdout + build.stderr
    assert not (tmp_path / "out").exists()


_FETCH = """
import sys
from dataclasses import replace
from pathlib import Path
from serving.pin import ModelPin, PinMismatch
from spira.bento.model_import import fetch_pinned, stored_bundle_dir
from training.adapters.memory import MemoryStore
from training.artifacts import write_output

pin, bundle = ModelPin.read(Path(sys.argv[1])), Path(sys.argv[2])
files = {f"model/{p.name}": p.read_bytes() for p in bundle.iterdir()}
store = MemoryStore()
write_output(store, "train", "k" * 24, {}, {**files, "history.json": b"[]"})
pinned = replace(pin, bundle_key="train/" + "k" * 24 + "/model")
fetch_pinned(pinned, store)
print("fetched", stored_bundle_dir(pinned))
# an object store whose bundle (and manifest) were replaced by another model's: the pin refuses it
other = {**files, "model/weights.bin": files["model/weights.bin"][::-1]}
write_output(store, "train", "j" * 24, {}, other)
try:
    fetch_pinned(replace(pinned, bundle_key="train/" + "j" * 24 + "/model"), store)
except PinMismatch as exc:
    print("refused", exc)
"""


def test_ci_fetches_the_pinned_bundle_from_the_object_store_and_refuses_another(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b")
    _pin(bundle).write(tmp_path / "pin.json")
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "PYTHONPATH": str(REPO)}
    out = _python(["-c", _FETCH, str(tmp_path / "pin.json"), str(bundle)], env)
    assert out.returncode == 0, out.stderr
    assert "fetched" in out.stdout and "refused" in out.stdout, out.stdout
