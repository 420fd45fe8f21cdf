"""Signed images for real: a loopback registry, the cached base image, CI's signature and provenance.

A digest is promotable only with CI's signature and signed provenance beside it. Refused: the same tag
pushed again with other bytes (its digest was never signed), a digest with no signature, records copied
from another digest, and records signed by a key that is not CI's.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci.attest import sign_tested
from ci.base_image import ensure_base
from ci.oci import Registry, attachment_tag
from ci.podman import Podman, PodmanConfig
from ci.promotion import SignatureCheck, commit_record, trailers, verify_promotion
from ci.registry import loopback_registry
from ci.set_image import set_image
from ci.signing import CYCLONEDX, SLSA_PROVENANCE, VerificationError, generate_key, verify_image

pytestmark = [pytest.mark.integration, pytest.mark.container]

REPO = Path(__file__).resolve().parents[3]
REPORT = json.dumps({"passed": True, "steps": ["ready", "contract", "gate"]}).encode()


@pytest.fixture(scope="module")
def podman() -> Podman:
    if not Podman.available():
        pytest.fail("podman/runc not installed: run `make sysdeps` (make test does)")
    return Podman(PodmanConfig.at())


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    with loopback_registry() as address:
        yield address


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("keys")
    return {"ci": generate_key(base / "ci"), "attacker": generate_key(base / "attacker")}


def push(podman: Podman, local: str, repository: str, tag: str, tmp: Path) -> str:
    digestfile = tmp / f"digest-{tag}"
    podman(
        "push", "--tls-verify=false", "--digestfile", str(digestfile), local, f"docker://{repository}:{tag}"
    )
    return digestfile.read_text().strip()


def derived(podman: Podman, base: str, tag: str, tmp: Path) -> str:
    """Other bytes: the same base with one file added."""
    ctx = tmp / tag
    ctx.mkdir()
    (ctx / "Containerfile").write_text(f"FROM {base}\nRUN echo {tag} > /etc/spira-{tag}\n")
    podman("build", "--network", "none", "-t", f"localhost/spira/{tag}:test", str(ctx))
    return f"localhost/spira/{tag}:test"


@pytest.fixture(scope="module")
def images(podman: Podman, registry: str, keys, tmp_path_factory) -> Iterator[dict[str, str]]:
    """model `good`: pushed as spira/model:release, tested, signed by CI; `tampered`: other bytes pushed
    under the same tag afterwards; `copied`: other bytes given copies of good's records. loadtest `signed`
    (CI) and `foreign` (signed by another key)."""
    tmp = tmp_path_factory.mktemp("images")
    base = ensure_base(podman, say=lambda _m: None)
    model, loadtest = f"{registry}/spira/model", f"{registry}/spira/loadtest"
    ci_key, other_key = keys["ci"][0].read_bytes(), keys["attacker"][0].read_bytes()
    out = {"repository": model, "base": base}
    out["good"] = push(podman, base, model, "release", tmp)
    sign_tested(
        podman, registry, "model", base, out["good"], ci_key, REPORT, True, base, {"modelVersion": "7"}
    )
    out["signed"] = push(podman, base, loadtest, "release", tmp)
    sign_tested(podman, registry, "loadtest", base, out["signed"], ci_key, REPORT, True, base)
    out["intake"] = push(podman, base, f"{registry}/spira/intake", "release", tmp)
    sign_tested(podman, registry, "intake", base, out["intake"], ci_key, REPORT, True, base)
    out["training"] = push(podman, base, f"{registry}/spira/training", "release", tmp)
    sign_tested(podman, registry, "training", base, out["training"], ci_key, REPORT, True, base)
    tampered = derived(podman, base, "tampered", tmp)
    out["tampered"] = push(podman, tampered, model, "release", tmp)
    out["foreign"] = push(podman, tampered, loadtest, "foreign", tmp)
    sign_tested(podman, registry, "loadtest", tampered, out["foreign"], other_key, REPORT, True, base)
    out["copied"] = push(podman, derived(podman, base, "copied", tmp), model, "copied", tmp)
    yield out
    podman("rmi", "-f", tampered, "localhost/spira/copied:test", check=False)


def deploy_on_staging(work: Path, model: str, loadtest: str, intake: str, training: str) -> None:
    """A clone whose `staging` records these digests with trailers, as the staging workflow commits them."""
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(work)], check=True)
    for args in (("config", "user.email", "ci@spira.test"), ("config", "user.name", "spira ci")):
        subprocess.run(["git", "-C", str(work), *args], check=True)
    changed = set_image(work, "loadtest", loadtest, golden=False).changed
    changed += set_image(work, "intake", intake, golden=False).changed
    changed += set_image(work, "training", training, golden=False).changed
    changed += set_image(work, "model", model, model_version="7", golden=False).changed
    commit_record(
        work,
        sorted(set(changed)),
        "images: deploy",
        trailers({"model": model, "loadtest": loadtest, "intake": intake, "training": training}, "run", "7"),
    )
    subprocess.run(["git", "-C", str(work), "branch", "-f", "staging", "HEAD"], check=True)


def test_a_tested_and_signed_digest_verifies_with_its_provenance_and_sbom(registry, images, keys):
    trusted = verify_image(
        Registry(registry), images["repository"], images["good"], keys["ci"][1].read_bytes()
    )
    assert (
        trusted.digest == images["good"] and trusted.sbom_components > 50
    )  # python3 and its Debian packages
    att = Registry(registry).manifest("spira/model", attachment_tag(images["good"], "att"))
    assert {layer["annotations"]["predicateType"] for layer in att.doc["layers"]} == {
        SLSA_PROVENANCE,
        CYCLONEDX,
    }


def test_the_same_tag_pushed_with_other_bytes_is_an_unsigned_digest_and_is_refused(registry, images, keys):
    tag_now = Registry(registry).manifest("spira/model", "release")
    assert tag_now.digest == images["tampered"] != images["good"]
    with pytest.raises(VerificationError, match="no signature by the CI key"):
        verify_image(Registry(registry), images["repository"], images["tampered"], keys["ci"][1].read_bytes())


def test_records_copied_from_a_signed_digest_do_not_vouch_for_other_bytes(registry, images, keys):
    reg = Registry(registry)
    for suffix in ("sig", "att"):
        copied = reg.manifest("spira/model", attachment_tag(images["good"], suffix)).doc
        reg.put_manifest("spira/model", attachment_tag(images["copied"], suffix), copied)
    with pytest.raises(VerificationError, match="no signature by the CI key names this digest"):
        verify_image(reg, images["repository"], images["copied"], keys["ci"][1].read_bytes())


def test_a_signature_by_any_other_key_is_refused(registry, images, keys):
    with pytest.raises(VerificationError, match="no signature by the CI key"):
        verify_image(
            Registry(registry), f"{registry}/spira/loadtest", images["foreign"], keys["ci"][1].read_bytes()
        )


def test_verify_promotion_passes_signed_digests_and_refuses_tampered_or_foreign_ones_recorded_on_staging(
    registry, images, keys, tmp_path
):
    """Trailers on staging no longer suffice: each digest needs CI's signature and provenance."""
    check = SignatureCheck(keys["ci"][1].read_bytes(), registry)
    cases = {"good": ("good", "signed"), "tampered": ("tampered", "signed"), "foreign": ("good", "foreign")}
    verdicts = {}
    for case, (model, loadtest) in cases.items():
        deploy_on_staging(
            tmp_path / case, images[model], images[loadtest], images["intake"], images["training"]
        )
        verdicts[case] = verify_promotion(tmp_path / case, "HEAD", "staging", check)
    assert verdicts["good"].ok, verdicts["good"].lines
    assert sum(line.startswith("SIGNED") for line in verdicts["good"].lines) == 4
    refused = {case: [line for line in v.lines if line.startswith("REFUSED")] for case, v in verdicts.items()}
    assert not verdicts["tampered"].ok and refused["tampered"][0].startswith("REFUSED spira-model")
    assert images["tampered"] in refused["tampered"][0] and len(refused["tampered"]) == 1
    assert not verdicts["foreign"].ok and refused["foreign"][0].startswith("REFUSED spira-loadtest")
    assert verify_promotion(tmp_path / "tampered", "HEAD", "staging").ok, (
        "without signatures, trailers alone pass"
    )
