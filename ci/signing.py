"""Signed images: a cosign-format signature over the digest and signed in-toto attestations beside it.

What CI stores next to every image it built and tested (ECDSA P-256 key, the format cosign and Sigstore's
verifiers read, so Kyverno or policy-controller can check the same records in a cluster, and podman does
with a `sigstoreSigned` policy):

- `sha256-<hex>.sig`: the simple-signing payload {critical: {identity: repository, image: digest}} with the
  signature in the layer's `dev.cosignproject.cosign/signature` annotation;
- `sha256-<hex>.att`: DSSE envelopes of in-toto Statements about that digest: the SLSA v1 provenance
  (source, revision, lock, base image, builder, the ephemeral test's report) and the CycloneDX SBOM, whose
  sha256 the provenance names among its byproducts.

`verify_image` trusts nothing the registry says: the manifest must hash to the digest, every signature must
verify with the public key, the payloads must name that digest and repository, and the provenance must
record a passing test and the SBOM beside it. No key, no record, a record for other bytes: refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ci.oci import (
    DigestMismatch,
    Layer,
    Registry,
    RegistryError,
    artifact_manifest,
    attachment_tag,
    b64,
    split_repository,
)

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
COSIGN_TYPE = "cosign container image signature"
STATEMENT = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
CYCLONEDX = "https://cyclonedx.org/bom"
BUILD_TYPE = (
    "https://spira.dev/image-build/v1"  # ci/build.py's hermetic podman build, then the ephemeral test
)
SBOM_NAME = "sbom.cdx.json"
TEST_REPORT = "ephemeral-test/report.json"
KEY_ENV = "SPIRA_SIGNING_KEY"  # CI: the private key (PEM) from the CI secret store


class VerificationError(RuntimeError):
    pass


def canonical_json(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


# -- keys ----------------------------------------------------------------------------------------------
def generate_key(directory: Path) -> tuple[Path, Path]:
    """A new ECDSA P-256 pair: cosign.key (PKCS#8 PEM, 0600) and cosign.pub (SubjectPublicKeyInfo PEM)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = directory / "cosign.key", directory / "cosign.pub"
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def ensure_local_key(home: Path) -> tuple[Path, Path]:
    """The local stack's signing pair under $SPIRA_HOME/signing, made once (CI uses its secret instead)."""
    directory = home / "signing"
    if (directory / "cosign.key").exists() and (directory / "cosign.pub").exists():
        return directory / "cosign.key", directory / "cosign.pub"
    return generate_key(directory)


def load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the signing key must be an ECDSA (P-256) private key in PEM")
    return key


def load_public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("the verification key must be an ECDSA (P-256) public key in PEM")
    return key


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    return b64(key.sign(data, ec.ECDSA(hashes.SHA256())))


def _verify(key: ec.EllipticCurvePublicKey, signature_b64: str, data: bytes) -> bool:
    try:
        key.verify(base64.b64decode(signature_b64), data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


# -- payloads ------------------------------------------------------------------------------------------
def simple_signing_payload(repository: str, digest: str, optional: dict | None = None) -> bytes:
    doc = {
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": COSIGN_TYPE,
        },
        "optional": optional,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what is actually signed."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def statement(repository: str, digest: str, predicate_type: str, predicate: dict) -> dict:
    return {
        "_type": STATEMENT,
        "subject": [{"name": repository, "digest": {"sha256": digest.removeprefix("sha256:")}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def dsse_envelope(key: ec.EllipticCurvePrivateKey, stmt: dict) -> bytes:
    payload = canonical_json(stmt)
    envelope = {
        "payloadType": IN_TOTO,
        "payload": b64(payload),
        "signatures": [{"keyid": "", "sig": _sign(key, pae(IN_TOTO, payload))}],
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


@dataclass(frozen=True)
class BuildFacts:
    """What the provenance states about one built, pushed and tested image."""

    image: str  # model | loadtest
    source: str  # repository URL
    revision: str  # git commit
    builder: str  # the CI workflow (or local:<host>)
    invocation: str  # the run URL
    containerfile: str
    lock_sha256: str
    base_image: str
    test_report: bytes  # the ephemeral test's report.json, as written
    test_passed: bool
    parameters: dict[str, str] = field(default_factory=dict)  # model version, torch flavour
    started: str = ""
    finished: str = ""


def provenance(facts: BuildFacts, sbom_sha256: str) -> dict:
    """The SLSA v1 provenance predicate: how the digest was built, from what, and its test."""
    deps = [
        {"uri": f"git+{facts.source}@{facts.revision}", "digest": {"gitCommit": facts.revision}},
        {"uri": "requirements.lock", "digest": {"sha256": facts.lock_sha256}},
        {"uri": facts.base_image, "name": "base image"},
    ]
    if "@sha256:" in facts.base_image:
        deps[-1]["digest"] = {"sha256": facts.base_image.split("@sha256:", 1)[1]}
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "image": facts.image,
                "source": facts.source,
                "revision": facts.revision,
                "containerfile": facts.containerfile,
                **facts.parameters,
            },
            "internalParameters": {"network": "none", "hashCheckedInstall": True},
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {"id": facts.builder},
            "metadata": {
                "invocationId": facts.invocation,
                **({"startedOn": facts.started} if facts.started else {}),
                **({"finishedOn": facts.finished} if facts.finished else {}),
            },
            "byproducts": [
                {
                    "name": SBOM_NAME,
                    "mediaType": "application/vnd.cyclonedx+json",
                    "digest": {"sha256": sbom_sha256},
                },
                {
                    "name": TEST_REPORT,
                    "mediaType": "application/json",
                    "digest": {"sha256": hashlib.sha256(facts.test_report).hexdigest()},
                    "annotations": {"passed": facts.test_passed},
                },
            ],
        },
    }


# -- sign ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Signed:
    repository: str
    digest: str
    signature_tag: str
    attestation_tag: str


def sign_image(
    registry: Registry, repository: str, digest: str, key_pem: bytes, facts: BuildFacts, sbom: dict
) -> Signed:
    """Store the signature and the two attestations beside `repository@digest` (refuses an untested image)."""
    if not facts.test_passed:
        raise VerificationError(f"refusing to sign {repository}@{digest}: its ephemeral test did not pass")
    _host, name = split_repository(repository)
    if registry.manifest(name, digest) is None:
        raise RegistryError(f"{repository}@{digest} is not in the registry")
    key = load_private_key(key_pem)
    payload = simple_signing_payload(
        repository, digest, {"revision": facts.revision, "run": facts.invocation}
    )
    sig = artifact_manifest(
        registry, name, [Layer(SIMPLE_SIGNING, payload, {SIGNATURE_ANNOTATION: _sign(key, payload)})]
    )
    registry.put_manifest(name, attachment_tag(digest, "sig"), sig)
    sbom_stmt = statement(repository, digest, CYCLONEDX, sbom)
    prov_stmt = statement(
        repository,
        digest,
        SLSA_PROVENANCE,
        provenance(facts, hashlib.sha256(canonical_json(sbom)).hexdigest()),
    )
    layers = [
        Layer(
            DSSE, dsse_envelope(key, stmt), {SIGNATURE_ANNOTATION: "", "predicateType": stmt["predicateType"]}
        )
        for stmt in (prov_stmt, sbom_stmt)
    ]
    att = artifact_manifest(registry, name, layers)
    registry.put_manifest(name, attachment_tag(digest, "att"), att)
    return Signed(repository, digest, attachment_tag(digest, "sig"), attachment_tag(digest, "att"))


# -- verify --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trusted:
    repository: str
    digest: str
    revision: str
    invocation: str
    builder: str
    sbom_components: int


def _layers(registry: Registry, name: str, tag: str) -> list[tuple[dict, bytes]]:
    manifest = registry.manifest(name, tag)
    if manifest is None:
        return []
    return [(layer, registry.blob(name, layer["digest"])) for layer in manifest.doc.get("layers", [])]


def _verified_statements(registry: Registry, name: str, digest: str, key) -> dict[str, dict]:
    """predicateType -> statement, for each DSSE layer signed by `key` whose subject is `digest`."""
    found: dict[str, dict] = {}
    for layer, data in _layers(registry, name, attachment_tag(digest, "att")):
        if layer.get("mediaType") != DSSE:
            continue
        envelope = json.loads(data)
        if envelope.get("payloadType") != IN_TOTO:
            continue
        payload = base64.b64decode(envelope["payload"])
        if not any(
            _verify(key, s.get("sig", ""), pae(IN_TOTO, payload)) for s in envelope.get("signatures", [])
        ):
            continue
        stmt = json.loads(payload)
        subjects = {s.get("digest", {}).get("sha256") for s in stmt.get("subject", [])}
        if stmt.get("_type") == STATEMENT and digest.removeprefix("sha256:") in subjects:
            found[stmt["predicateType"]] = stmt
    return found


def verify_image(registry: Registry, repository: str, digest: str, public_key_pem: bytes) -> Trusted:
    """Return what CI's signed records say about `repository@digest`, or raise VerificationError naming why not."""
    _, name = split_repository(repository)
    key = load_public_key(public_key_pem)
    where = f"{repository}@{digest}"
    try:
        if registry.manifest(name, digest) is None:
            raise VerificationError(f"{where}: no such image in the registry")
        signed = False
        for layer, payload in _layers(registry, name, attachment_tag(digest, "sig")):
            sig = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION, "")
            if layer.get("mediaType") != SIMPLE_SIGNING or not _verify(key, sig, payload):
                continue
            critical = json.loads(payload).get("critical", {})
            if (
                critical.get("type") == COSIGN_TYPE
                and critical.get("image", {}).get("docker-manifest-digest") == digest
                and critical.get("identity", {}).get("docker-reference") == repository
            ):
                signed = True
        if not signed:
            raise VerificationError(
                f"{where}: no signature by the CI key names this digest (unsigned or other bytes)"
            )
        statements = _verified_statements(registry, name, digest, key)
    except (DigestMismatch, RegistryError) as exc:
        raise VerificationError(f"{where}: {exc}") from exc
    prov, sbom = statements.get(SLSA_PROVENANCE), statements.get(CYCLONEDX)
    if prov is None or sbom is None:
        missing = " and ".join(t for t, s in (("provenance", prov), ("SBOM", sbom)) if s is None)
        raise VerificationError(f"{where}: signed, but no {missing} attestation signed by the CI key")
    predicate = prov["predicate"]
    if predicate.get("buildDefinition", {}).get("buildType") != BUILD_TYPE:
        raise VerificationError(f"{where}: the provenance is not of this project's build ({BUILD_TYPE})")
    byproducts = {b.get("name"): b for b in predicate.get("runDetails", {}).get("byproducts", [])}
    report = byproducts.get(TEST_REPORT, {})
    if (report.get("annotations") or {}).get("passed") is not True:
        raise VerificationError(f"{where}: the provenance records no passing ephemeral test")
    sbom_digest = hashlib.sha256(canonical_json(sbom["predicate"])).hexdigest()
    if byproducts.get(SBOM_NAME, {}).get("digest", {}).get("sha256") != sbom_digest:
        raise VerificationError(f"{where}: the SBOM beside the image is not the one its provenance names")
    params = predicate["buildDefinition"].get("externalParameters", {})
    run = predicate.get("runDetails", {})
    return Trusted(
        repository,
        digest,
        params.get("revision", ""),
        run.get("metadata", {}).get("invocationId", ""),
        run.get("builder", {}).get("id", ""),
        len(sbom["predicate"].get("components", [])),
    )
