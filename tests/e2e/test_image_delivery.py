"""Single build, ephemeral test by digest, deploy the tested digest: the images for real (podman, registry).

The model image carries the Bento of the session's real trained model (the same one the serving tests use);
each image is built once per session, and the base image, wheelhouses and layers are cached.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci.build import BuildOptions, build, push
from ci.ephemeral import EphemeralOptions, run_ephemeral
from ci.podman import Podman, PodmanConfig
from ci.registry import loopback_registry
from ci.set_image import image_entries, replace_digest
from tests.fixtures.model import ServedModel

pytestmark = [pytest.mark.e2e, pytest.mark.container, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CONTRACT_TESTS = REPO / "tests" / "contract"


@pytest.fixture(scope="session")
def podman() -> Podman:
    if not Podman.available():
        pytest.fail("podman/runc not installed: run `make sysdeps` (make test does)")
    return Podman(PodmanConfig.at())


@pytest.fixture(scope="session")
def registry() -> Iterator[str]:
    with loopback_registry() as address:
        yield address


@pytest.fixture(scope="session")
def version(served_model: ServedModel) -> str:
    return served_model.version


@pytest.fixture(scope="session")
def bento(served_model: ServedModel, tmp_path_factory) -> Path:
    """`spira bento build` of the trained model, exported with its models (what the Containerfile copies)."""
    out = tmp_path_factory.mktemp("bento") / "bento"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "BENTOML_HOME": served_model.env["BENTOML_HOME"],
        "SPIRA_MODEL_PIN": served_model.env["SPIRA_MODEL_PIN"],
    }
    proc = subprocess.run(
        [sys.executable, "-m", "spira.cli", "bento", "build", "--export-dir", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


@pytest.fixture(scope="session")
def images(podman: Podman, registry: str, bento: Path, version: str) -> dict:
    out = {}
    for image in ("loadtest", "model"):
        built = build(podman, BuildOptions(image, registry, bento_dir=bento, model_version=version), REPO)
        out[image] = (built, push(podman, built, registry))
    return out


@pytest.fixture(scope="session")
def ephemeral(podman: Podman, images: dict, version: str, tmp_path_factory):
    opts = EphemeralOptions(
        images["model"][1].ref,
        version,
        images["loadtest"][1].ref,
        CONTRACT_TESTS,
        tmp_path_factory.mktemp("ephemeral"),
        gate_duration_s=8,
    )
    return run_ephemeral(podman, opts, say=lambda _m: None), opts


def test_the_model_image_passes_its_ephemeral_test_by_digest(ephemeral):
    report, opts = ephemeral
    assert report.passed, (
        json.dumps(report.__dict__, indent=2) + (opts.out_dir / "model.log").read_text()[-3000:]
    )
    assert "@sha256:" in report.model_ref and "@sha256:" in report.loadtest_ref


def test_the_ephemeral_container_is_removed_and_its_logs_kept(podman: Podman, ephemeral):
    report, opts = ephemeral
    assert podman("container", "exists", report.container, check=False).returncode != 0
    assert (opts.out_dir / "model.log").stat().st_size > 0 and (opts.out_dir / "report.json").exists()


def test_the_image_runs_as_uid_10001_and_labels_its_provenance(images, version: str):
    built, _ = images["model"]
    assert built.labels["dev.spira.model-version"] == version
    assert len(built.labels["org.opencontainers.image.revision"]) == 40


def test_a_second_build_reuses_nothing_from_the_run_and_the_deployed_digest_is_the_tested_one(
    podman: Podman, registry: str, bento: Path, images: dict, ephemeral, version: str
):
    tested = images["model"][1]
    again = build(podman, BuildOptions("model", registry, bento_dir=bento, model_version=version), REPO)
    assert again.image_id == images["model"][0].image_id, "the run changed what a rebuild produces"
    assert push(podman, again, registry).digest == tested.digest
    # What the container wrote at run time (BentoML's home, /tmp) was on tmpfs, not in any layer.
    listing = podman.text(
        "run", "--rm", "--network", "none", "--pull", "never", tested.ref, "ls", "-A", "/home"
    )
    assert "bentoml" not in listing
    deployed = replace_digest(
        (REPO / "argocd/base/kustomization.yaml").read_text(), "spira-model", tested.ref.split("@")[1]
    )
    assert image_entries(deployed)["spira-model"].digest == tested.digest


def test_the_tested_images_are_signed_with_provenance_and_an_sbom_that_verify(
    podman: Podman, registry: str, images: dict, ephemeral, tmp_path: Path
):
    """What CI's publish step stores beside each tested digest (here with a throwaway key) verifies, and the
    model's SBOM lists torch with the sha256 requirements.lock pins for it."""
    from base64 import b64decode

    from ci.attest import sign_tested
    from ci.oci import Registry, attachment_tag
    from ci.signing import CYCLONEDX, generate_key, verify_image

    report, opts = ephemeral
    private, public = generate_key(tmp_path / "keys")
    for name, (built, pushed) in images.items():
        body = (opts.out_dir / "report.json").read_bytes()
        sign_tested(
            podman,
            registry,
            name,
            built.local_ref,
            pushed.digest,
            private.read_bytes(),
            body,
            report.passed,
            "",
        )
        trusted = verify_image(Registry(registry), pushed.repository, pushed.digest, public.read_bytes())
        assert trusted.revision == built.labels["org.opencontainers.image.revision"]
    model = images["model"][1]
    reg, repo = Registry(registry), model.repository.split("/", 1)[1]
    att = reg.manifest(repo, attachment_tag(model.digest, "att")).doc
    (layer,) = [x for x in att["layers"] if x["annotations"]["predicateType"] == CYCLONEDX]
    envelope = json.loads(reg.blob(repo, layer["digest"]))
    sbom = json.loads(b64decode(envelope["payload"]))["predicate"]
    (torch,) = [c for c in sbom["components"] if c["name"] == "torch"]
    assert torch["version"].startswith("2.13.0") and torch["hashes"]


@pytest.fixture(scope="session")
def intake_image(podman: Podman, registry: str):
    built = build(podman, BuildOptions("intake", registry), REPO)
    return built, push(podman, built, registry)


def test_the_intake_image_passes_its_ephemeral_test_by_digest_and_carries_no_torch(
    podman: Podman, intake_image, local_stack, tmp_path: Path
):
    """The intake image by digest, read-only as uid 10001 with only VAULT_*, against the session's stack:
    ready, an upload without a token is a 401, a hospital's bad upload /predict's 415, a recording a 202."""
    from ci.ephemeral_intake import run_intake_ephemeral

    built, pushed = intake_image
    report = run_intake_ephemeral(podman, pushed.ref, tmp_path, info=local_stack)
    assert report.passed, (report.checks, report.error, (tmp_path / "intake.log").read_text()[-3000:])
    assert len(built.labels["org.opencontainers.image.revision"]) == 40
    listing = podman.text(
        "run",
        "--rm",
        "--network",
        "none",
        "--pull",
        "never",
        pushed.ref,
        "ls",
        "/opt/venv/lib/python3.11/site-packages",
    )
    assert "torch" not in listing.split() and "bentoml" not in listing.split()
