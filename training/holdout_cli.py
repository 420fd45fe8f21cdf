"""`spira holdout freeze`: turn a dataset CSV into the frozen holdout the clinical gate judges on.

    spira holdout freeze --data DIR/dataset.csv --noise DIR/noise.csv [--out DIR] [--no-upload]

Writes the holdout folder (`--out`: `dataset.csv` with the condition columns and the audio named by content
hash) and uploads it to the features bucket under `holdout/<version>/`, moving `holdout/CURRENT` to it:
the pipeline then excludes its recordings from training and publish judges on it. Prints the version and
where it lies. Settings come from Vault (the training service's secret) unless --settings names a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="The frozen holdout of the clinical gate.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)
out = Console()


@app.callback()
def _group() -> None:
    """The frozen holdout of the clinical gate (`freeze`)."""


@app.command()
def freeze(
    data: Annotated[Path, typer.Option("--data", help="dataset CSV (file_path,class[,site])")],
    noise: Annotated[
        Path | None, typer.Option("--noise", help="hospital-noise CSV: adds a noisy copy of each recording")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="also write the holdout folder here")] = None,
    upload: Annotated[
        bool, typer.Option("--upload/--no-upload", help="upload to the features bucket and make it current")
    ] = True,
    settings: Annotated[
        Path | None, typer.Option("--settings", help="JSON file with the training settings (default: Vault)")
    ] = None,
) -> None:
    """Freeze a dataset CSV into a versioned, content-hashed holdout (local folder and object store)."""
    from spira_core.clinical.holdout import HoldoutError
    from training.data import DatasetError
    from training.holdout import freeze as freeze_holdout
    from training.holdout import upload as upload_holdout
    from training.holdout import write_folder
    from training.ports import ServiceUnavailable

    if not upload and out_dir is None:
        raise typer.BadParameter("--no-upload needs --out (the holdout has to go somewhere)")
    try:
        frozen = freeze_holdout(data, noise)
        summary = frozen.holdout.summary()
        console.print(
            f"holdout {summary['version']}: {summary['n']} recordings ({summary['patients']} patients), "
            f"sha256 {summary['sha256']}"
        )
        if out_dir is not None:
            console.print(f"  folder: {write_folder(frozen, out_dir)}")
        if upload:
            from training.adapters.s3 import S3ArtifactStore
            from training.wiring import load_settings

            s = load_settings(settings)
            store = S3ArtifactStore(
                s["s3_endpoint"],
                s["s3_access_key"],
                s["s3_secret_key"],
                s["features_bucket"],
                prefix="holdout",
            )
            upload_holdout(frozen, store)
            console.print(f"  uploaded: s3://{s['features_bucket']}/holdout/{summary['version']}/ (current)")
    except (DatasetError, HoldoutError, ServiceUnavailable, ValueError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from exc
    out.print(summary["version"])
