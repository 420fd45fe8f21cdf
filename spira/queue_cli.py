"""`spira intake --port P`, `spira worker --model VERSION_OR_ALIAS`, `spira submit DIR --url URL` and
`spira submit --results`: the burst path against the local stack (docs/queue.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from spira.submit import DEFAULT_JOURNAL


def _act_as(service: str) -> None:
    """Run as the stack's `service` workload (its Vault contract), unless the shell already carries one."""
    from spira.workload import act_as

    act_as(service)


def intake(
    port: int = typer.Option(..., "--port", help="Port of the intake API."),
    host: str = typer.Option("127.0.0.1", "--host"),
) -> None:
    """Serve the intake API (POST /v1/recordings, GET /v1/jobs/{id}) against the local stack."""
    _act_as("intake")
    from intake.wiring import serve

    serve(port, host)


def worker(
    model: str = typer.Option(..., "--model", help="MLflow version number or alias."),
    tracking_uri: str | None = typer.Option(None),
) -> None:
    """Run one queue worker: pull jobs, predict in batches, store results, ack."""
    import logging
    import tempfile

    from serving.inference import Predictor
    from spira.bento.cli import _tracking_uri
    from spira.bento.model_import import MlflowModelSource
    from spira_core.model import load_bundle

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s worker %(levelname)s %(message)s")
    # the model as the operator reads it from MLflow (as `spira predict` does), then the worker's identity
    source = MlflowModelSource(_tracking_uri(tracking_uri))
    resolved = source.resolve(model)
    with tempfile.TemporaryDirectory() as tmp:
        predictor = Predictor.from_bundle(load_bundle(source.download(resolved, Path(tmp))), resolved.version)
    _act_as("worker")
    from serving.worker import serve

    stats = serve(predictor)
    print(json.dumps({"worker": "stopped", **stats.__dict__}), file=sys.stderr, flush=True)


def submit(
    folder: Path | None = typer.Argument(None, help="Folder of recordings (WAV, FLAC, OGG) to send."),
    url: str | None = typer.Option(None, "--url", help="The intake API, e.g. http://127.0.0.1:8300."),
    results: bool = typer.Option(False, "--results", help="Print one JSON line per recording when done."),
    journal: Path = typer.Option(DEFAULT_JOURNAL, "--journal", help="The local journal (resume point)."),
    site: str = typer.Option("", "--site", help="The hospital's site name, sent with each recording."),
    concurrency: int = typer.Option(8, "--concurrency", help="Uploads in flight."),
    wait_s: float = typer.Option(600.0, "--wait", help="--results: seconds to wait for unfinished jobs."),
) -> None:
    """Send every recording of FOLDER through the intake (idempotent, resumable), or print the results.
    The hospital's credential comes from VAULT_ADDR, VAULT_ROLE and its AppRole secret ID
    (spira_core/predict_credential.py); on the local stack, a hospital secret ID is issued for this run."""
    from spira.stack.predict_clients import act_as_client
    from spira.submit import Journal, SubmitError
    from spira.submit import results as job_results
    from spira.submit import submit as send
    from spira_core.predict_credential import CredentialError, PredictCredential

    act_as_client("hospital")
    try:
        credential = PredictCredential.from_env()
    except CredentialError as exc:
        raise typer.BadParameter(f"no hospital credential: {exc}") from exc
    book = Journal(journal)
    if results:
        failed = 0
        for line in job_results(book, wait_s=wait_s, credential=credential):
            failed += line.get("status") != "done"
            print(json.dumps(line), flush=True)
        raise typer.Exit(1 if failed else 0)
    if folder is None or url is None:
        raise typer.BadParameter("give a FOLDER and --url (or --results)")
    if not folder.is_dir():
        raise typer.BadParameter(f"{folder} is not a folder")
    try:
        counts = send(folder, url, book, site=site, concurrency=concurrency, credential=credential)
    except SubmitError as exc:
        print(f"error: {exc} (run the same command again: it resumes from {journal})", file=sys.stderr)
        raise typer.Exit(2) from exc
    print(json.dumps(counts), file=sys.stderr)
