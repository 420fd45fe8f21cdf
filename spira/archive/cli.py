"""`spira archive purge --env ENV [--dry-run]`: delete patients' uploads older than their retention period."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, help="The patient archive's retention.")


@app.callback()
def _archive() -> None:
    """The patient archive's retention (infra/environments.yaml, `retention`)."""


@app.command()
def purge(
    env: str = typer.Option(..., "--env", help="local | staging | production"),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be deleted; delete nothing."),
    endpoint: str | None = typer.Option(
        None, "--s3-endpoint", help="Reach the store here instead of the secret's address (a port-forward)."
    ),
) -> None:
    """Delete uploads written more than the environment's retention period ago, with the archive-purge
    service's own key (list and delete under uploads/ only); younger uploads are never touched."""
    import botocore.exceptions
    import hvac.exceptions

    from infra.retention import retention
    from spira.archive.purge import purge as run_purge
    from spira.archive.wiring import archive_for, purge_secret

    try:
        expiry = retention().patient_audio(env)
        archive = archive_for(env, purge_secret(env), endpoint)
        report = run_purge(archive, expiry, datetime.now(UTC), dry_run=dry_run)
    except (ValueError, RuntimeError, hvac.exceptions.VaultError, botocore.exceptions.BotoCoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except botocore.exceptions.ClientError as exc:
        typer.echo(f"error: the object store refused: {exc}", err=True)
        raise typer.Exit(1) from exc
    verb = "would delete" if dry_run else "deleted"
    Console(stderr=True).print(
        f"{report.bucket}/{report.prefix}: retention {report.days} days (cutoff {report.cutoff:%Y-%m-%dT%H:%M:%SZ}); "
        f"{report.listed} listed, {verb} {len(report.deleted)}, kept {report.kept}, failed {len(report.failed)}"
    )
    for key in report.deleted:
        typer.echo(f"{verb} {key}")
    for key, why in report.failed:
        typer.echo(f"failed {key}: {why}", err=True)
    if report.failed:
        raise typer.Exit(1)
