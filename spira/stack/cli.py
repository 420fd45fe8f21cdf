"""`spira stack up | down | status | env`."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from spira.stack.config import StackConfig
from spira.stack.errors import StackError
from spira.stack.stack import LocalStack

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Local stack of real services.")
console = Console(stderr=True)

HomeOpt = typer.Option(None, "--home", help="Data dir (default $SPIRA_HOME or .spira).")


def _stack(home: Path | None, **ports: int | None) -> LocalStack:
    return LocalStack(StackConfig.load(home, **ports))


def _fail(exc: StackError) -> None:
    console.print(
        f"[red]error[/red] {exc.service}: {exc.problem}" + (f"\n  → {exc.hint}" if exc.hint else "")
    )
    raise typer.Exit(1)


@app.command()
def up(
    home: Path | None = HomeOpt,
    vault_port: int | None = typer.Option(None, help="OpenBao port"),
    s3_port: int | None = typer.Option(None, help="SeaweedFS S3 port"),
    mlflow_port: int | None = typer.Option(None, help="MLflow port"),
    registry_port: int | None = typer.Option(None, help="registry port"),
) -> None:
    """Start (or reuse) every service and wait until each is healthy; roll back on failure."""
    stack = _stack(
        home, vault_port=vault_port, s3_port=s3_port, mlflow_port=mlflow_port, registry_port=registry_port
    )
    try:
        with console.status("starting the local stack"):
            stack.up(say=lambda m: console.print(f"  {m}"))
    except StackError as exc:
        _fail(exc)
    _print_status(stack)
    console.print(
        'stop it with [bold]spira stack down[/bold]; shell settings: [bold]eval "$(spira stack env)"[/bold]'
    )


@app.command()
def down(home: Path | None = HomeOpt) -> None:
    """Stop exactly the processes the stack started."""
    stopped = _stack(home).down()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@app.command()
def status(home: Path | None = HomeOpt) -> None:
    """Each service, its port, pid and health."""
    stack = _stack(home)
    _print_status(stack)
    if any(s.health not in {"healthy", "not installed"} for s in stack.status()):
        raise typer.Exit(1)


@app.command()
def env(home: Path | None = HomeOpt) -> None:
    """Export lines for a shell: eval "$(spira stack env)"."""
    try:
        info = _stack(home).info()
    except StackError as exc:
        _fail(exc)
    for key, value in info.shell_env().items():
        print(f"export {key}={shlex.quote(value)}")


def _print_status(stack: LocalStack) -> None:
    table = Table(title=f"SPIRA local stack ({stack.cfg.home})")
    for col in ("service", "ports", "pid", "health"):
        table.add_column(col)
    colours = {"healthy": "green", "stopped": "yellow", "unhealthy": "red", "not installed": "dim"}
    for st in stack.status():
        table.add_row(
            st.name,
            ", ".join(map(str, st.ports)),
            str(st.pid or "-"),
            f"[{colours[st.health]}]{st.health}[/]",
        )
    Console().print(table)
