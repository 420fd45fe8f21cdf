"""The demo promotes every image the GitOps base pins: each is built, tested by digest, signed and passed to
set-image, so verify-promotion finds a tested, signed digest for all of them (a forgotten one is refused)."""

from __future__ import annotations

import re

import pytest
import typer

from ci import cli as ci_cli
from ci.build import IMAGES
from ci.set_image import KUSTOMIZATION, KUSTOMIZE_NAMES, image_entries
from spira.demo import steps
from spira.demo.steps import REPO, StepFailed, pinned_images, set_image_args


def _refs(images) -> dict[str, str]:
    return {image: f"127.0.0.1:5000/spira/{image}@sha256:{i:064x}" for i, image in enumerate(images)}


def test_the_demo_passes_every_image_the_kustomization_pins_to_set_image() -> None:
    text = (REPO / KUSTOMIZATION).read_text()
    refs = _refs(KUSTOMIZE_NAMES)
    args = set_image_args(pinned_images(text), refs)
    by_kname = {kname: image for image, kname in KUSTOMIZE_NAMES.items()}
    pinned = [by_kname[kname] for kname in image_entries(text)]
    assert pinned and set(pinned) == set(KUSTOMIZE_NAMES)  # the base pins every image CI promotes
    for image in pinned:
        assert args[args.index(f"--{image}") + 1] == refs[image]
    assert len(args) == 2 * len(pinned)


def test_every_option_the_demo_gives_set_image_is_one_set_image_accepts() -> None:
    command = typer.main.get_command(ci_cli.app).commands["set-image"]
    accepted = {opt for param in command.params for opt in param.opts}
    given = set_image_args(list(KUSTOMIZE_NAMES), _refs(KUSTOMIZE_NAMES))[::2]
    assert set(given) <= accepted


def test_every_pinnable_image_has_a_build_an_ephemeral_test_and_a_report_to_sign_with() -> None:
    for image in KUSTOMIZE_NAMES:
        assert image in IMAGES and image in steps.BUILD_ORDER and image in steps.TEST_REPORTS
        assert image in ("model", "loadtest") or image in steps.OWN_TESTS


def test_an_image_pinned_without_a_name_set_image_knows_stops_the_demo() -> None:
    text = (REPO / KUSTOMIZATION).read_text().replace("- name: spira-intake", "- name: spira-sidecar")
    with pytest.raises(StepFailed, match="spira-sidecar"):
        pinned_images(text)


def test_a_newly_pinned_image_the_demo_cannot_build_and_test_stops_it(monkeypatch) -> None:
    monkeypatch.setitem(KUSTOMIZE_NAMES, "sidecar", "spira-sidecar")
    text = (REPO / KUSTOMIZATION).read_text() + (
        "  - name: spira-sidecar\n"
        "    newName: registry.spira.example.org/spira/sidecar\n"
        f"    digest: sha256:{'c' * 64}\n"
    )
    with pytest.raises(StepFailed, match="sidecar"):
        pinned_images(text)


def test_a_pinned_image_without_a_tested_digest_is_not_recorded() -> None:
    refs = _refs(["model", "loadtest"])
    with pytest.raises(StepFailed, match="intake"):
        set_image_args(["loadtest", "intake", "model"], refs)


def test_an_origin_seeded_before_an_image_was_pinned_gets_only_what_it_pins() -> None:
    text = (REPO / KUSTOMIZATION).read_text()
    older = re.sub(r"  - name: spira-training\n(    \S.*\n)*", "", text)
    assert older != text
    assert "training" not in pinned_images(older)
    assert "--training" not in set_image_args(pinned_images(older), _refs(KUSTOMIZE_NAMES))
