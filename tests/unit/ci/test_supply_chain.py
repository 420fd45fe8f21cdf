"""Supply chain, without services: the hash lock, what the builds install with, and the signed records' format."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import tomllib
from pathlib import Path

import pytest

from ci.lock import PROMOTE_HEADER, canonical, parse_lock, render_lock
from ci.signing import IN_TOTO, dsse_envelope, load_public_key, pae, simple_signing_payload, statement
from ci.wheelhouse import HashMismatch, flavoured_constraints, hashed_requirements

REPO = Path(__file__).resolve().parents[3]
LOCK = (REPO / "requirements.lock").read_text()
SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")


def test_every_pin_of_the_lock_has_a_sha256_and_the_file_is_exactly_what_ci_lock_writes():
    pins = parse_lock(LOCK)
    assert len(pins) > 150
    unhashed = [p.name for p in pins.values() if not p.hashes or not all(SHA256.match(h) for h in p.hashes)]
    assert unhashed == [], f"pins without a sha256: {unhashed} (run python -m ci.lock)"
    assert render_lock(pins) == LOCK, (
        "requirements.lock was edited by hand: regenerate it with python -m ci.lock"
    )


def test_every_requirement_of_pyproject_and_the_build_tools_is_pinned_at_its_version():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    pins = parse_lock(LOCK)
    for req in [r for r in reqs if "==" in r] + ["pip==25.3", "setuptools==80.9.0", "wheel==0.45.1"]:
        name, version = req.split("==")
        pin = pins.get(canonical(name))
        assert pin is not None and pin.version.split("+")[0] == version, f"{req} is not locked as such"


def test_the_promote_lock_is_the_same_lines_as_the_main_lock():
    text = (REPO / "ci/promote.lock").read_text()
    promote, pins = parse_lock(text), parse_lock(LOCK)
    assert {"pyyaml", "typer", "cryptography"} <= set(promote)
    assert all(pins[key] == pin for key, pin in promote.items())
    assert render_lock(promote, PROMOTE_HEADER) == text


@pytest.mark.parametrize(
    "containerfile", ["serving/Containerfile", "loadtests/Containerfile", "intake/Containerfile"]
)
def test_each_image_installs_its_wheelhouse_with_require_hashes_and_no_index(containerfile: str):
    text = (REPO / containerfile).read_text().replace("\\\n", " ")
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs and all(
        "--require-hashes -r /wheels/requirements.txt" in line and "--no-index" in line for line in installs
    )
    assert not any(re.search(r"\s-c\s", line) for line in installs), "constraints bypass hash checking"


def test_the_venv_installs_the_lock_with_require_hashes_and_only_the_project_itself_without():
    recipe = (REPO / "Makefile").read_text().split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    installs = [line.strip() for line in recipe.splitlines() if "pip install" in line]
    assert "--require-hashes -r requirements.lock" in installs[0]
    assert all("--require-hashes" in line or "--no-deps" in line for line in installs)


def _wheel(directory: Path, name: str, version: str, content: bytes) -> str:
    path = directory / f"{name}-{version}-py3-none-any.whl"
    path.write_bytes(content)
    return "sha256:" + hashlib.sha256(content).hexdigest()


def test_a_wheelhouse_file_whose_hash_the_lock_lacks_is_refused(tmp_path: Path):
    good = _wheel(tmp_path, "six", "1.17.0", b"the wheel pip resolved")
    lock = f"six==1.17.0 \\\n    --hash={good}\nnumpy==2.4.6 \\\n    --hash=sha256:{'0' * 64}\n"
    out = hashed_requirements(tmp_path, lock)
    assert parse_lock(out) == {"six": parse_lock(lock)["six"]}, "only what the wheelhouse holds"
    _wheel(tmp_path, "numpy", "2.4.6", b"other bytes under the pinned name")
    with pytest.raises(HashMismatch, match=r"numpy==2\.4\.6"):
        hashed_requirements(tmp_path, lock)


def test_the_torch_flavour_rewrites_the_version_of_the_hashed_torch_line_and_keeps_its_hashes():
    out = flavoured_constraints(LOCK, "cuda")
    before, after = parse_lock(LOCK)["torch"], parse_lock(out)["torch"]
    assert after.version == before.version.replace("+cpu", "+cu128") and after.hashes == before.hashes
    assert [a for a, b in zip(LOCK.splitlines(), out.splitlines(), strict=True) if a != b] == [
        f"torch=={before.version} \\"
    ]


def test_a_dsse_envelope_signs_the_pre_authentication_encoding_of_the_statement(tmp_path: Path):
    from ci.signing import _verify, generate_key, load_private_key

    private, public = generate_key(tmp_path)
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    stmt = statement(
        "r.example/spira/model", "sha256:" + "a" * 64, "https://slsa.dev/provenance/v1", {"x": 1}
    )
    env = json.loads(dsse_envelope(load_private_key(private.read_bytes()), stmt))
    payload = base64.b64decode(env["payload"])
    key = load_public_key(public.read_bytes())
    assert _verify(key, env["signatures"][0]["sig"], pae(IN_TOTO, payload))
    assert not _verify(key, env["signatures"][0]["sig"], pae(IN_TOTO, payload.replace(b"a" * 64, b"b" * 64)))
    assert pae("t", b"xy") == b"DSSEv1 1 t 2 xy"


def test_the_signature_payload_names_the_repository_and_the_digest_as_cosign_does():
    doc = json.loads(simple_signing_payload("r.example/spira/model", "sha256:" + "c" * 64))
    assert doc["critical"] == {
        "identity": {"docker-reference": "r.example/spira/model"},
        "image": {"docker-manifest-digest": "sha256:" + "c" * 64},
        "type": "cosign container image signature",
    }
