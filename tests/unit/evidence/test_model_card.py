"""The model card and the evidence bundle: what they say, and that a changed byte is caught."""

from __future__ import annotations

import json

import pytest

from spira.evidence.bundle import CARD_MD, CURRENT, MANIFEST, BundleStore, EvidenceError, make_bundle
from spira.evidence.card import CardFacts, render_html, render_markdown
from spira.evidence.service import current_bundle, store_bundle
from tests.fixtures.verdicts import clinical_verdict

LOAD_GATE = {
    "outcome": "pass",
    "verdict": {
        "passed": True,
        "checks": [
            {
                "slo": "latency_p95_ms",
                "measured": 412.0,
                "threshold": 1500.0,
                "comparison": "<=",
                "passed": True,
                "reason": "",
                "unit": "ms",
            },
            {
                "slo": "error_rate",
                "measured": 0.0,
                "threshold": 0.01,
                "comparison": "<=",
                "passed": True,
                "reason": "",
                "unit": "",
            },
        ],
    },
}


def facts(**over) -> CardFacts:
    base = dict(
        model_name="spira-respiratory",
        version="2",
        created_at="2026-12-07T01:00:00+00:00",
        image="127.0.0.1:5000/spira/model@sha256:" + "b" * 64,
        code_commit="0123456789abcdef",
        dataset_fingerprint="fp-42",
        run_id="run-1",
        training_params={"preset.epochs": "3", "features.n_mfcc": "40"},
        clinical=clinical_verdict(),
        load_gate=LOAD_GATE,
        confusion={"clean": [[20, 3], [2, 25]]},
        reports={"clinical gate report": "clinical-gate/report.html"},
    )
    return CardFacts(**{**base, **over})


class MemoryStore(BundleStore):
    def __init__(self) -> None:
        self.bucket, self.objects = "spira-local-features", {}

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = data

    def get(self, key: str) -> bytes:
        if key not in self.objects:
            raise EvidenceError(f"no object {key}")
        return self.objects[key]


def test_the_markdown_card_names_what_was_promoted_from_what_and_judged_on_which_holdout():
    f = facts()
    md = render_markdown(f)
    holdout = f.clinical["holdout"]
    for fact in (
        f.image,
        "0123456789abcdef",
        "fp-42",
        holdout["version"],
        holdout["sha256"],
        "preset.epochs",
    ):
        assert fact in md
    assert "| overall |" in md and "| noise=hospital |" in md, "the strata table"
    overall = f.clinical["strata"][0]["metrics"]["sensitivity"]["candidate"]
    assert f"{overall['value']:.3f} [{overall['low']:.3f}, {overall['high']:.3f}]" in md, "with its interval"
    assert "| control | 20 | 3 |" in md and "| patient | 2 | 25 |" in md, "the confusion matrix"
    assert "| latency_p95_ms | 412 ms | <= 1500 ms | PASS |" in md
    assert "[clinical gate report](clinical-gate/report.html)" in md


def test_the_html_card_escapes_what_it_shows_and_links_the_reports():
    page = render_html(facts(code_commit="<script>x</script>"))
    assert "<script>x" not in page and "&lt;script&gt;x" in page
    assert '<a href="clinical-gate/report.html">' in page


def test_a_card_without_gates_says_so_rather_than_inventing_results():
    md = render_markdown(facts(clinical=None, load_gate=None, image=None, confusion={}))
    assert "| clinical gate | not run |" in md and "| load gate | not run |" in md
    assert "none (no image built)" in md and "Confusion" not in md


def test_the_bundle_hash_covers_every_file_and_changes_with_any_of_them():
    one = make_bundle(facts(), {"clinical-gate/report.html": b"<html>a</html>"})
    two = make_bundle(facts(), {"clinical-gate/report.html": b"<html>b</html>"})
    assert one.digest != two.digest
    assert set(json.loads(one.manifest)["files"]) == set(one.files)


def test_a_stored_bundle_is_read_back_as_current_and_a_changed_card_is_refused():
    store = MemoryStore()
    stored = store_bundle(store, "evidence/", facts(), {})
    assert stored.uri == f"s3://spira-local-features/evidence/spira-respiratory/2/{stored.digest}/"
    assert stored.trailer == f"{stored.uri} sha256:{stored.digest}"
    assert "evidence/spira-respiratory/2/" + CURRENT in store.objects
    assert current_bundle(store, "evidence/", "spira-respiratory", "2").markdown == stored.markdown
    key = stored.uri.removeprefix("s3://spira-local-features/")
    store.objects[key + CARD_MD] = b"# a different card\n"
    with pytest.raises(EvidenceError, match="does not match the bundle's manifest"):
        current_bundle(store, "evidence/", "spira-respiratory", "2")
    store.objects[key + MANIFEST] = b"{}"
    with pytest.raises(EvidenceError, match="does not hash to"):
        current_bundle(store, "evidence/", "spira-respiratory", "2")


def test_a_version_without_evidence_is_a_clear_error():
    with pytest.raises(EvidenceError, match="no evidence for spira-respiratory version 9"):
        current_bundle(MemoryStore(), "evidence/", "spira-respiratory", "9")
