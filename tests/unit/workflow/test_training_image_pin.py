"""The training image is pinned once, by digest, in argocd/base/kustomization.yaml (the `spira-training`
entry, beside the model's and the intake's): `spira workflow render ENV` runs every step in it, `--image`
overrides it, and `spira image set-image --training` rewrites that one line, which the render then reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ci.set_image import KUSTOMIZATION, KUSTOMIZE_NAMES, SetImageError, image_entries, set_image
from spira.workflow import render as R
from spira.workflow.cli import app

REPO = Path(__file__).resolve().parents[3]
OTHER = "registry.example/spira/training@sha256:" + "cd" * 32


def _pin() -> str:
    entry = image_entries((REPO / KUSTOMIZATION).read_text())[KUSTOMIZE_NAMES["training"]]
    return f"{entry.new_name}@{entry.digest}"


def _images(objects: list[dict]) -> set[str]:
    (template,) = [o for o in objects if o["kind"] == "WorkflowTemplate"]
    return {t["container"]["image"] for t in template["spec"]["templates"] if "container" in t}


def test_the_training_image_is_pinned_by_digest_in_the_same_registry_as_the_model():
    entries = image_entries((REPO / KUSTOMIZATION).read_text())
    training, model = entries["spira-training"], entries["spira-model"]
    assert training.new_name == model.new_name.rsplit("/", 1)[0] + "/training"
    assert R.DIGEST_REF.match(_pin()) and training.digest != model.digest


@pytest.mark.parametrize("env", ["local", "staging", "production"])
def test_the_render_without_an_image_runs_every_step_in_the_pinned_training_image(env: str):
    assert R.pinned_image() == _pin()
    assert _images(R.render_workflow_objects(env)) == {_pin()}


def test_the_render_command_without_image_prints_the_pinned_digest_in_every_step():
    out = CliRunner().invoke(app, ["render", "production"])
    assert out.exit_code == 0, out.output
    assert _images(list(yaml.safe_load_all(out.stdout))) == {_pin()}


def test_the_image_option_overrides_the_pin():
    out = CliRunner().invoke(app, ["render", "staging", "--image", OTHER])
    assert out.exit_code == 0, out.output
    assert _images(list(yaml.safe_load_all(out.stdout))) == {OTHER}


def _checkout_copy(tmp_path: Path) -> Path:
    (tmp_path / KUSTOMIZATION).parent.mkdir(parents=True)
    shutil.copy(REPO / KUSTOMIZATION, tmp_path / KUSTOMIZATION)
    return tmp_path


def test_set_image_training_rewrites_one_line_and_the_render_reads_the_new_pin(tmp_path: Path):
    root = _checkout_copy(tmp_path)
    before = (root / KUSTOMIZATION).read_text()
    result = set_image(root, "training", OTHER, golden=False)
    after = (root / KUSTOMIZATION).read_text()
    assert result.changed == [KUSTOMIZATION]
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert changed == [(f"    digest: {_pin().split('@')[1]}", f"    digest: {OTHER.split('@')[1]}")]
    assert R.pinned_image(root) == f"registry.spira.example.org/spira/training@{OTHER.split('@')[1]}"


def test_set_image_refuses_a_training_image_by_tag(tmp_path: Path):
    root = _checkout_copy(tmp_path)
    with pytest.raises(SetImageError, match="not an image digest"):
        set_image(root, "training", "registry.example/spira/training:latest", golden=False)


def test_a_base_without_a_training_pin_is_a_clear_error_not_a_guess(tmp_path: Path):
    root = _checkout_copy(tmp_path)
    text = (root / KUSTOMIZATION).read_text().replace("name: spira-training", "name: spira-trainer")
    (root / KUSTOMIZATION).write_text(text)
    with pytest.raises(ValueError, match=r"no pinned training image.*spira-training"):
        R.pinned_image(root)
