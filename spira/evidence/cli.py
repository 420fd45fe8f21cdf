"""`spira evidence build` (at promotion) and `spira evidence show VERSION`.

Both act as the training workload (its Vault secret: the object store key and its MLflow user); the bundle
goes where infra/environments.yaml declares `evidence`. `build` prints the bundle's location and hash as
its last line, the value of the promotion commit's `Spira-Evidence` trailer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Promotion evidence: model cards.")

MODEL_NAME = "spira-respiratory"
EnvOpt = Annotated[str, typer.Option("--env", help="environment whose evidence bucket to use")]


def _wiring(env: str):
    """(store, prefix, MLflow client) from the training secret and the declaration."""
    from mlflow.tracking import MlflowClient

    from infra.environments import declared
    from spira.evidence.s3 import S3BundleStore
    from training.wiring import build_registry, load_settings

    s = load_settings()
    bucket, prefix = declared().evidence_location(env)
    _, uri = build_registry(s["mlflow_tracking_uri"], s["mlflow_username"], s["mlflow_password"])
    store = S3BundleStore(s["s3_endpoint"], s["s3_access_key"], s["s3_secret_key"], bucket)
    return store, prefix, MlflowClient(tracking_uri=uri, registry_uri=uri)


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


@app.command("build")
def build_cmd(
    version: Annotated[str, typer.Option(help="the MLflow model version being promoted")],
    image: Annotated[str | None, typer.Option(help="the model image reference, name@sha256:...")] = None,
    clinical: Annotated[
        Path | None, typer.Option(help="spira gate clinical --out folder (default: publish's verdict)")
    ] = None,
    load_gate: Annotated[Path | None, typer.Option(help="spira gate --out folder")] = None,
    env: EnvOpt = "local",
) -> None:
    """Render the model card, store the bundle, attach it to the MLflow version; print its location."""
    from spira.evidence.bundle import EvidenceError
    from spira.evidence.collect import attach, collect
    from spira.evidence.service import store_bundle

    try:
        store, prefix, client = _wiring(env)
        facts, reports = collect(client, MODEL_NAME, version, image, clinical, load_gate)
        stored = store_bundle(store, prefix, facts, reports)
        attach(client, MODEL_NAME, version, facts.run_id, stored.uri, stored.digest, stored.markdown)
    except (EvidenceError, KeyError, OSError, ValueError) as exc:
        raise _fail(exc) from exc
    typer.echo(stored.trailer)


@app.command("show")
def show_cmd(
    version: Annotated[str, typer.Argument(help="MLflow model version")],
    env: EnvOpt = "local",
) -> None:
    """Print the version's model card (checked against its content hash) and where the bundle lies."""
    from spira.evidence.bundle import EvidenceError
    from spira.evidence.service import current_bundle

    try:
        store, prefix, _ = _wiring(env)
        stored = current_bundle(store, prefix, MODEL_NAME, version)
    except (EvidenceError, KeyError, OSError, ValueError) as exc:
        raise _fail(exc) from exc
    typer.echo(stored.markdown.rstrip())
    typer.echo(f"\nevidence: {stored.uri} (sha256:{stored.digest}, content hash verified)")
