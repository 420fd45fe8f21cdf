"""The gate's synthetic uploads are archived under their own prefix, never among patients' uploads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from loadtests.multipart import SYNTHETIC_HEADERS
from serving.app import create_app
from serving.archive import SYNTHETIC_HEADER, SYNTHETIC_PREFIX, UPLOADS_PREFIX, Spool, Uploader
from serving.batching import Batching
from serving.runtime import ServingRuntime
from tests.fakes.serving import MemoryArchive, RecordingMetrics, fake_predictor, wav_bytes


@pytest.fixture
def served(tmp_path: Path):
    store, metrics = MemoryArchive(), RecordingMetrics()
    spool = Spool(tmp_path / "spool", metrics)
    runtime = ServingRuntime(fake_predictor(0.6, batching=Batching(64, 5.0)), metrics, spool=spool)
    with TestClient(create_app(lambda: runtime)) as client:
        yield client, Uploader(store, tmp_path / "spool", RecordingMetrics()), store


def archived_under(store: MemoryArchive) -> dict[str, str]:
    """filename -> the prefix its upload was archived under (from each item's .json record)."""
    out = {}
    for key, body in store.objects.items():
        if key.endswith(".json"):
            record = json.loads(body)
            out[record["filename"]] = key.split("/", 1)[0] + "/"
    return out


def test_an_unmarked_upload_is_archived_under_the_patient_uploads_prefix(served) -> None:
    client, uploader, store = served
    assert client.post("/predict", files={"audio": ("patient.wav", wav_bytes(4.2))}).status_code == 200
    assert uploader.drain_once() == 1
    assert archived_under(store) == {"patient.wav": UPLOADS_PREFIX}


def test_the_gates_marked_uploads_single_and_batched_go_under_the_synthetic_prefix(served) -> None:
    client, uploader, store = served
    files = {"audio": ("gate.wav", wav_bytes(4.2))}
    assert client.post("/predict", files=files, headers=SYNTHETIC_HEADERS).status_code == 200
    batch = [("audio", ("gate-1.wav", wav_bytes(4.2))), ("audio", ("gate-2.wav", wav_bytes(4.2)))]
    assert client.post("/predict_batch", files=batch, headers=SYNTHETIC_HEADERS).status_code == 200
    assert uploader.drain_once() == 3
    assert archived_under(store) == dict.fromkeys(["gate.wav", "gate-1.wav", "gate-2.wav"], SYNTHETIC_PREFIX)
    assert all(json.loads(b)["synthetic"] for k, b in store.objects.items() if k.endswith(".json"))


def test_the_header_the_gate_sends_is_the_one_the_server_reads() -> None:
    # loadtests import no serving code: the two sides name the header separately.
    assert {h.lower() for h in SYNTHETIC_HEADERS} == {SYNTHETIC_HEADER}
