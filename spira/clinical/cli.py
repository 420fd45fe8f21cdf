"""`spira gate clinical` from the project CLI: the gate image's runner (spira.clinical.gate) with the
champion's recorded result from MLflow as the default baseline, and a rich table of the verdict.

`gate` here is the root's `spira gate`: `spira gate clinical ...` runs the clinical gate, anything else is
the load gate's command line (spira.gate_cli), unchanged."""

from __future__ import annotations

import sys

import typer
import typer.main
from rich.console import Console
from rich.table import Table
from rich.text import Text

from spira.clinical.gate import (
    COULD_NOT_RUN,
    ClinicalResult,
    config_from_args,
    credential_headers,
    parser,
    run_clinical,
)


def render(result: ClinicalResult, console: Console) -> None:
    if result.verdict is None:
        console.print(Text(f"clinical gate: COULD NOT RUN: {result.message}", style="bold yellow"))
        return
    v = result.verdict
    style = "bold green" if v["verdict"] == "PASS" else "bold red"
    base = f"v{v['baseline']['model_version']} ({v['baseline']['source']})" if v["baseline"] else "none"
    console.print(
        Text(
            f"clinical gate: {v['verdict']} on holdout {v['holdout']['version']} "
            f"({v['holdout']['n']} recordings): candidate {v['candidate']['model_version']} vs baseline {base}",
            style=style,
        )
    )
    table = Table(title=f"per stratum ({v['thresholds']['environment']} margins, 95 % intervals)")
    for col in ("stratum", "n", "judged", "sensitivity", "specificity", "auc", "result"):
        table.add_column(col, justify="left" if col in ("stratum", "judged") else "right")
    for row in v["strata"]:
        cells = []
        for m in ("sensitivity", "specificity", "auc"):
            c, d = row["metrics"][m]["candidate"], row["metrics"][m].get("difference")
            if c["value"] is None:
                cells.append("n/a")
                continue
            text = f"{c['value']:.3f} [{c['low']:.3f}, {c['high']:.3f}]"
            if d and d["low"] is not None:
                text += f"\nΔ {d['value']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
            cells.append(text)
        state = ("PASS" if row["pass"] else "FAIL") if row["judged"] else "reported"
        mark = Text(state, style="green" if state == "PASS" else ("bold red" if state == "FAIL" else "dim"))
        table.add_row(row["stratum"], str(row["n"]), "yes" if row["judged"] else row["reason"], *cells, mark)
    console.print(table)
    for reason in v["reasons"]:
        console.print(f"[red]reason:[/red] {reason}")
    for name, path in result.artifacts.items():
        console.print(f"[dim]{name}:[/dim] {path}")


def run(argv: list[str]) -> int:
    """Parse with the runner's own parser (exit 2 on a usage error), score, judge, render."""
    from spira.clinical.recorded import champion_recorded
    from spira.stack.predict_clients import act_as_client
    from spira_core.predict_credential import CredentialError

    config = config_from_args(parser().parse_args(argv))
    # From an operator's shell on the local stack the gate logs in as the stack's gate client, as the
    # load gate does (spira/stack/predict_clients.py); a Job brings its own three variables.
    act_as_client("gate")
    console = Console(width=max(Console().width, 140))

    try:
        headers = credential_headers()
    except (CredentialError, KeyError, ValueError) as exc:
        render(ClinicalResult(COULD_NOT_RUN, message=f"no credential for /predict: {exc}"), console)
        return COULD_NOT_RUN
    with console.status(f"clinical gate: scoring the holdout on {config.url}", spinner="dots"):
        result = run_clinical(config, champion_recorded, headers)
    render(result, console)
    return result.exit_code


_app = typer.Typer(add_completion=False)


@_app.command(
    add_help_option=False,  # --help goes to the parser of the gate that runs
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
)
def _gate(ctx: typer.Context) -> None:
    """Promotion gates: `spira gate ...` load test (SLOs); `spira gate clinical ...` non-inferiority on
    the frozen holdout. Exit 0 pass, 1 fail, 2 could not run."""
    if ctx.args[:1] == ["clinical"]:
        sys.exit(run(ctx.args[1:]))
    from spira.gate_cli import run as run_load_gate

    sys.exit(run_load_gate(ctx.args))


gate = typer.main.get_command(_app)
