"""`spira gate`: the promotion gate from the project CLI, with a rich verdict table.

The work is done by `loadtests.gate` (the same code the loadtest image runs as `spira-gate`), and so is the
command line: the arguments go to `loadtests.gate.parser()`, where each option is declared once. This
module only renders the result. Exit 0 pass, 1 fail, 2 could not run (or a usage error).
"""

from __future__ import annotations

import sys

import typer
import typer.main
from rich.console import Console
from rich.table import Table
from rich.text import Text

from loadtests.gate import COULD_NOT_RUN, PASS, GateResult, config_from_args, headline, parser, rows, run_gate
from spira.stack.predict_clients import act_as_client


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


def run(argv: list[str]) -> int:
    """Parse `argv` with the gate's own parser (argparse exits 2 on a usage error, 0 after --help)."""
    config = config_from_args(parser(prog="spira gate").parse_args(argv))
    # From an operator's shell on the local stack the gate logs in as the stack's gate client, as the
    # gate Job does in a cluster with its own three variables (spira/stack/predict_clients.py).
    act_as_client("gate")
    console = Console(width=max(Console().width, 140))
    with console.status(f"gate: load testing {config.url}", spinner="dots"):
        result = run_gate(config)
    render(result, console)
    return result.exit_code


_app = typer.Typer(add_completion=False)


@_app.command(
    add_help_option=False,  # --help goes to the gate's parser, which lists the options
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
)
def _gate(ctx: typer.Context) -> None:
    """Load test a candidate with Locust and judge it against SLO thresholds (exit 0 pass, 1 fail, 2 error)."""
    # SystemExit, not typer.Exit: the root group is plain click, which does not know typer's Exit class
    sys.exit(run(ctx.args))


gate = typer.main.get_command(_app)
