"""`spira backup create --out DIR` and `spira backup restore DIR` against the local stack ($SPIRA_HOME)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from spira.backup import drill
from spira.backup.manifest import BackupFailed, BackupRefused

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Back up and restore the local stack.")
console = Console(stderr=True)
HomeOpt = typer.Option(None, "--home", help="The stack's data dir (default $SPIRA_HOME or .spira).")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _table(title: str, steps: list[drill.Step]) -> Table:
    table = Table(title=title)
    for col in ("part", "what", "seconds"):
        table.add_column(col)
    for step in steps:
        table.add_row(step.part, step.result.what, f"{step.seconds:.1f}")
    return table


@app.command()
def create(
    out: Path = typer.Option(..., "--out", help="A new (or empty) directory for the backup."),
    home: Path | None = HomeOpt,
) -> None:
    """OpenBao raft snapshot + unseal keys, every object and the object store's identities, MLflow's database."""
    from spira.backup.wiring import local_backup

    try:
        with console.status("taking a backup") as status:
            manifest, steps = drill.create(out, local_backup(home), say=lambda m: _progress(status, m))
    except (BackupRefused, BackupFailed) as exc:
        _fail(str(exc))
    size = sum(f["size"] for f in manifest.files.values())
    Console().print(_table(f"backup of {manifest.stack['home']} at {manifest.created_at}", steps))
    console.print(
        f"{out.resolve()}: {len(manifest.files)} files, {_human(size)}, manifest.json with each sha256. "
        "It holds Vault's unseal keys and patient data: keep it as you keep those."
    )


@app.command()
def restore(
    backup: Path = typer.Argument(..., help="A directory written by `spira backup create`."),
    home: Path | None = HomeOpt,
) -> None:
    """Verify every file's sha256, then restore Vault, the object store and MLflow, and restart MLflow."""
    from spira.backup.wiring import local_backup

    try:
        with console.status("restoring") as status:
            manifest, steps, notes = drill.restore(
                backup, local_backup(home), say=lambda m: _progress(status, m)
            )
    except BackupRefused as exc:
        _fail(f"{exc}; nothing was restored")
    except BackupFailed as exc:
        _fail(f"{exc}; the restore stopped part-way, run it again once the cause is fixed")
    Console().print(
        _table(f"restored the backup of {manifest.created_at} (taken from {manifest.stack['home']})", steps)
    )
    for note in notes:
        console.print(f"[yellow]note[/yellow]: {note}")


def _progress(status, message: str) -> None:
    console.print(f"  {message}")
    status.update(message)
