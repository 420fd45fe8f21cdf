"""`spira gate`: the promotion gate from the project CLI, with a rich verdict table.

The work is done by `loadtests.gate` (the same code the loadtest image runs as `spira-gate`); this module
only maps options and renders the result. Exit 0 pass, 1 fail, 2 could not run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from loadtests.gate import COULD_NOT_RUN, PASS, GateConfig, GateResult, headline, rows, run_gate


def render(result: GateResult, console: Console) -> None:
    style = {PASS: "bold green", COULD_NOT_RUN: "bold yellow"}.get(result.exit_code, "bold red")
    console.print(Text(headline(result), style=style))
    table_rows = rows(result)
    if table_rows:
        env = result.thresholds.environment if result.thresholds else "?"
        table = Table(title=f"SLO verdict ({env} thresholds)", show_lines=False, expand=False)
        table.add_column("SLO", no_wrap=True)
        table.add_column("measured", justify="right", no_wrap=True)
        table.add_column("threshold", justify="right", no_wrap=True)
        table.add_column("result", no_wrap=True)
        table.add_column("reason", overflow="fold")
        for slo, measured, threshold, outcome, reason in table_rows:
            mark = Text(outcome, style="green" if outcome == "PASS" else "bold red")
            table.add_row(slo, measured, threshold, mark, reason)
        console.print(table)
    for note in result.notes:
        console.print(f"[dim]note:[/dim] {note}")
    if result.artifacts:
        for name in ("html", "csv_stats", "verdict"):
            if name in result.artifacts:
                console.print(f"[dim]{name}:[/dim] {result.artifacts[name]}")


def gate(
    url: Annotated[str, typer.Option(help="Candidate base URL, e.g. http://127.0.0.1:3000.")],
    users: Annotated[int | None, typer.Option(help="Concurrent users (default: thresholds file).")] = None,
    spawn_rate: Annotated[float | None, typer.Option(help="Users started per second.")] = None,
    duration: Annotated[float | None, typer.Option(help="Run time in seconds.")] = None,
    max_requests: Annotated[int | None, typer.Option(help="Stop after this many requests.")] = None,
    thresholds: Annotated[
        str, typer.Option(help="local, staging, production (packaged files) or a thresholds YAML path.")
    ] = "local",
    expect_model_version: Annotated[
        str | None,
        typer.Option(
            help="model_version every answer must carry (default: read from /readyz or the first answer)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for the HTML report, CSV stats and verdict.json.")] = Path(
        ".spira/gate"
    ),
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for GET /readyz 200.")] = 5.0,
    corpus_dir: Annotated[Path | None, typer.Option(help="Cached WAV corpus folder.")] = None,
) -> None:
    """Load test a candidate with Locust and judge it against SLO thresholds (exit 0 pass, 1 fail, 2 error)."""
    config = GateConfig(
        url=url,
        thresholds=thresholds,
        out_dir=out,
        users=users,
        spawn_rate=spawn_rate,
        duration_s=duration,
        max_requests=max_requests,
        expect_model_version=expect_model_version,
        ready_timeout_s=ready_timeout,
        corpus_dir=corpus_dir,
    )
    console = Console(width=max(Console().width, 140))
    with console.status(f"gate: load testing {url}", spinner="dots"):
        result = run_gate(config)
    render(result, console)
    # SystemExit, not typer.Exit: the root group is plain click, which does not know typer's Exit class
    sys.exit(result.exit_code)
