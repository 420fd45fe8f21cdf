"""`spira workflow …`: continuous training as Argo Workflows objects (docs/workflows.md).

spira workflow render staging      # what Argo CD applies of those kinds (kustomize build of the overlay)
spira workflow render staging --image REGISTRY/spira/training@sha256:...   # another digest
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console

from spira.workflow.play_cli import play

app = typer.Typer(
    help="Continuous training: the stage pipeline as Argo Workflows objects.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)


@app.command()
def render(
    env: Annotated[str, typer.Argument(help="environment (infra/environments.yaml)")],
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            help="another training image by digest (name@sha256:...); default: the pinned one "
            "(argocd/base/kustomization.yaml, spira-training)",
        ),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="validate against the upstream CRD schemas")
    ] = True,
) -> None:
    """Print the WorkflowTemplate, CronWorkflow and trigger objects of ENV as Argo CD applies them (the
    kustomize build of its overlay; `local`: the base), multi-document YAML."""
    from spira.manifests.render import RenderError
    from spira.workflow.render import render_workflow_objects

    try:
        objects = render_workflow_objects(env, image)
    except (ValueError, RenderError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from exc
    if check:
        from spira.workflow.validate import schema_errors

        errors = schema_errors(objects)
        for error in errors:
            console.print(f"[bold red]schema:[/] {error}")
        if errors:
            raise typer.Exit(code=1)
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False))


@app.command()
def candidate(
    env: Annotated[str, typer.Option("--env", help="the environment the workflow trained in")],
    outcome: Annotated[str, typer.Option("--outcome", help="publish's outcome JSON (text or a file)")],
    train_outcome: Annotated[
        str, typer.Option("--train-outcome", help="train's outcome JSON (text or a file)")
    ],
) -> None:
    """After publish: when it registered a new candidate, ask GitHub to open the change to staging."""
    from spira.workflow.candidate import CandidateError, dispatch_from_outcome

    def read(value: str) -> dict:
        return json.loads(value if value.lstrip().startswith("{") else Path(value).read_text())

    try:
        message = dispatch_from_outcome(env, read(outcome), read(train_outcome))
    except (CandidateError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from exc
    console.print(message)


# `spira workflow play --data CSV --noise CSV [--preset P]`: the rendered template's steps as containers
app.command("play")(play)
