"""Gather one promotion's facts: the MLflow version and its run, the gates' output folders (I/O)."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spira.evidence.bundle import EvidenceError
from spira.evidence.card import CardFacts

METRICS_ARTIFACT = "evaluation/metrics.json"
VERDICT_ARTIFACT = "clinical/verdict.json"
CARD_ARTIFACT = "evidence/model_card.md"
URI_TAG, SHA_TAG = "evidence.uri", "evidence.sha256"


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _artifact(client, run_id: str, path: str) -> dict[str, Any] | None:
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            return json.loads(Path(client.download_artifacts(run_id, path, tmp)).read_text())
        except (MlflowException, OSError):
            return None


def collect(
    client,
    model_name: str,
    version: str,
    image: str | None,
    clinical_dir: Path | None,
    load_gate_dir: Path | None,
) -> tuple[CardFacts, dict[str, bytes]]:
    """The card's facts and the reports to bundle. The clinical verdict is the gate's (`clinical_dir`), else
    the one publish recorded in the run; the load gate's only from its folder."""
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(model_name, version)
        run = client.get_run(mv.run_id)
    except MlflowException as exc:
        raise EvidenceError(f"MLflow has no {model_name} version {version}: {exc}") from exc
    reports: dict[str, bytes] = {}
    titles: dict[str, str] = {}
    clinical = None
    if clinical_dir is not None:
        clinical = _read_json(clinical_dir / "verdict.json")
        if clinical is None:
            raise EvidenceError(f"{clinical_dir} has no verdict.json (spira gate clinical --out)")
        reports["clinical-gate/verdict.json"] = (clinical_dir / "verdict.json").read_bytes()
        if (clinical_dir / "report.html").is_file():
            reports["clinical-gate/report.html"] = (clinical_dir / "report.html").read_bytes()
            titles["clinical gate report"] = "clinical-gate/report.html"
    else:
        clinical = _artifact(client, mv.run_id, VERDICT_ARTIFACT)
    load = None
    if load_gate_dir is not None:
        load = _read_json(load_gate_dir / "verdict.json")
        if load is None:
            raise EvidenceError(f"{load_gate_dir} has no verdict.json (spira gate --out)")
        reports["load-gate/verdict.json"] = (load_gate_dir / "verdict.json").read_bytes()
        if (load_gate_dir / "report.html").is_file():
            reports["load-gate/report.html"] = (load_gate_dir / "report.html").read_bytes()
            titles["load gate report (Locust)"] = "load-gate/report.html"
    metrics = _artifact(client, mv.run_id, METRICS_ARTIFACT) or {}
    tags = run.data.tags
    facts = CardFacts(
        model_name=model_name,
        version=str(version),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        image=image,
        code_commit=tags.get("git_commit"),
        dataset_fingerprint=tags.get("dataset_fingerprint"),
        run_id=mv.run_id,
        training_params=dict(run.data.params),
        clinical=clinical,
        load_gate=load,
        confusion={c: m["confusion"] for c, m in metrics.items() if isinstance(m, dict) and "confusion" in m},
        reports=titles,
    )
    return facts, reports


def attach(
    client, model_name: str, version: str, run_id: str | None, uri: str, digest: str, card: str
) -> None:
    """The bundle's location and hash as tags of the MLflow version; the card as an artifact of its run."""
    client.set_model_version_tag(model_name, version, URI_TAG, uri)
    client.set_model_version_tag(model_name, version, SHA_TAG, digest)
    if run_id:
        client.log_text(run_id, card, CARD_ARTIFACT)
