"""The clusters' admission policy checks the same signed records CI writes, and is valid against Kyverno's CRD."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from ci.set_image import KUSTOMIZATION, image_entries
from ci.signing import BUILD_TYPE, CYCLONEDX, SLSA_PROVENANCE, TEST_REPORT
from spira.manifests import schemas
from spira.manifests.contracts import kubernetes_version

REPO = Path(__file__).resolve().parents[3]
POLICY = REPO / "infra/admission/verify-images-clusterpolicy.yaml"


def _errors(doc: dict) -> list[str]:
    crd = yaml.safe_load((schemas.CRD_DIR / "clusterpolicy.yaml").read_text())
    (v1,) = crd["spec"]["versions"]
    validator = schemas._validator_class(kubernetes_version())(
        schemas.strict(v1["schema"]["openAPIV3Schema"])
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


def _verify(doc: dict) -> dict:
    (rule,) = doc["spec"]["rules"]
    (verify,) = rule["verifyImages"]
    return verify


def test_the_policy_is_valid_against_kyvernos_clusterpolicy_schema_and_a_typo_is_not():
    doc = yaml.safe_load(POLICY.read_text())
    assert _errors(doc) == []
    typo = copy.deepcopy(doc)
    _verify(typo)["atestors"] = _verify(typo).pop("attestors")
    assert any("atestors" in e for e in _errors(typo))


def test_every_pod_image_of_the_spira_repositories_must_be_signed_by_digest_and_enforced():
    doc = yaml.safe_load(POLICY.read_text())
    verify = _verify(doc)
    assert doc["spec"]["rules"][0]["match"]["any"][0]["resources"]["kinds"] == ["Pod"]
    assert verify["failureAction"] == "Enforce" and verify["required"] and verify["verifyDigest"]
    patterns = verify["imageReferences"]
    for entry in image_entries((REPO / KUSTOMIZATION).read_text()).values():
        assert any(entry.new_name.startswith(p.rstrip("*")) for p in patterns), entry.new_name


def test_the_attestations_required_are_the_ones_ci_signs_with_the_same_key():
    verify = _verify(yaml.safe_load(POLICY.read_text()))
    by_type = {a["type"]: a for a in verify["attestations"]}
    assert set(by_type) == {SLSA_PROVENANCE, CYCLONEDX}
    keys = [e["keys"] for a in [verify, *by_type.values()] for att in a["attestors"] for e in att["entries"]]
    assert all(k == keys[0] and k["rekor"]["ignoreTlog"] and k["ctlog"]["ignoreSCT"] for k in keys)
    conditions = by_type[SLSA_PROVENANCE]["conditions"][0]["all"]
    assert {"key": "{{ buildDefinition.buildType }}", "operator": "Equals", "value": BUILD_TYPE} in conditions
    assert any(TEST_REPORT in c["key"] and c["value"] is True for c in conditions)
