"""`spira workflow play --data CSV --noise CSV [--preset P]`: the wiring of the play (spira/workflow/play.py).

The local stack ($SPIRA_HOME, as `spira stack up` left it) gives Vault, S3, MLflow and the loopback registry;
the training image is built (layers cached: unchanged code builds nothing) and pushed there, and the
WorkflowTemplate is rendered for `local` with that digest. Exit 0 once MLflow's registry holds the version
the publish step registered; 1 naming the step that failed.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(stderr=True)
out = Console()
ENV = "local"
TOKEN_TTL_S = 3600


def training_image(podman: Any, registry: str, say=print) -> str:
    """Build the training image (cached layers) and push it; its `name@sha256:` reference."""
    from ci.build import BuildOptions, build, push

    built = build(podman, BuildOptions("training", registry), say=say)
    return push(podman, built, registry).ref


def registered(info: Any, version: str) -> bool:
    """The version is in the stack's MLflow registry (read as the operator, MLflow's admin)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from training.stages.publish import MODEL_NAME

    os.environ.update(info.mlflow_operator_env())
    try:
        return MlflowClient(info.mlflow_uri).get_model_version(MODEL_NAME, version) is not None
    except MlflowException:
        return False


def run_play(
    data: Path,
    noise: Path,
    preset: str | None,
    epochs: int | None = None,
    image: str | None = None,
    stack_home: str | None = None,
    on_step=lambda _s: None,
    say=print,
) -> tuple[Any, str]:
    """Render, then play every step; (PlayResult, the image played)."""
    from ci.podman import Podman, PodmanConfig
    from spira.stack import LocalStack, StackConfig
    from spira.workflow import render_workflow_objects
    from spira.workflow.play import (
        PlayInputs,
        PodmanStepRunner,
        data_inputs,
        find_template,
        plan_steps,
        play_steps,
        token_files,
    )

    folder, dataset, noise_csv = data_inputs(data, noise)
    info = LocalStack(StackConfig.load(stack_home or os.environ.get("SPIRA_HOME") or None)).info()
    podman = Podman(PodmanConfig.at())
    if image is None:
        if not info.registry:
            raise RuntimeError("the local stack runs no registry (apt-get install docker-registry)")
        image = training_image(podman, info.registry, say=say)
    template = find_template(render_workflow_objects(ENV, image))
    steps = plan_steps(template)
    with tempfile.TemporaryDirectory(prefix="spira-play-token-") as tmp:
        token_dir = Path(tmp) / "vault"

        def fresh_token(_step: Any) -> None:
            token_files(token_dir, info.service_jwt("training", ttl_s=TOKEN_TTL_S), info.vault_ca)

        inputs = PlayInputs(image, folder, dataset, noise_csv, token_dir, info.vault_addr, preset, epochs)
        result = play_steps(
            steps,
            template["spec"],
            inputs,
            PodmanStepRunner(podman),
            run_id=uuid.uuid4().hex[:8],
            on_step=on_step,
            before_step=fresh_token,
        )
    if result.failed is None and (result.version is None or not registered(info, result.version)):
        result.version = None
    return result, image


def print_table(result: Any) -> None:
    from spira.workflow.play import step_rows

    table = Table(title="workflow play")
    for col in ("step", "status", "seconds", "work", "key"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for row in step_rows(result):
        table.add_row(*row)
    out.print(table)


def play(
    data: Annotated[
        Path, typer.Option("--data", help="dataset CSV (file_path,class); recordings under its folder")
    ],
    noise: Annotated[Path, typer.Option("--noise", help="hospital-noise CSV, in the dataset CSV's folder")],
    preset: Annotated[
        str | None,
        typer.Option("--preset", help="the preset every step trains with (default: the template's)"),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="override the preset's epochs (a short run)")
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            "--image", help="the training image by digest (default: build and push it to the stack)"
        ),
    ] = None,
) -> None:
    """Run the rendered WorkflowTemplate's steps as containers, in DAG order, against the local stack."""
    from spira.workflow.play import PlayError

    def said(outcome: Any) -> None:
        console.print(f"[bold]{outcome.name}[/]: {outcome.status} {outcome.seconds:.1f} s")

    try:
        result, ref = run_play(data, noise, preset, epochs, image, on_step=said, say=console.print)
    except (PlayError, ValueError, RuntimeError) as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code=2) from exc
    print_table(result)
    console.print(f"image {ref}")
    failed = result.failed
    if failed is not None:
        console.print(
            f"[bold red]step {failed.name} failed[/] (exit {failed.exit_code}):\n{escape(failed.detail)}"
        )
        raise typer.Exit(code=1)
    if result.version is None:
        console.print(
            "[bold red]error:[/] the publish step registered no version that MLflow's registry holds"
        )
        raise typer.Exit(code=1)
    out.print(f"registered spira-respiratory version {result.version}")
