"""`spira manifests`: render, check, golden."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="GitOps manifests: render, check, golden files."
)


@app.command("render")
def render_cmd(
    env: Annotated[str, typer.Argument(help="staging | production | local (the base)")],
) -> None:
    """Print what Argo CD would apply for ENV (kustomize build of its overlay)."""
    from spira.manifests import render

    try:
        sys.stdout.write(render.render(env))
    except (ValueError, render.RenderError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command("check")
def check_cmd() -> None:
    """Schemas (core and CRD, strict), semantics, Argo CD bootstrap, drift guard, golden files, checkov."""
    from spira.manifests import check

    try:
        findings = check.run()
    except FileNotFoundError as exc:  # a tool the checks need (checkov, kubectl): one line naming the fix
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for finding in findings:
        typer.echo(str(finding))
    if findings:
        typer.echo(f"{len(findings)} problem(s)", err=True)
        raise typer.Exit(1)
    typer.echo("manifests OK: local, staging, production")


@app.command("golden")
def golden_cmd() -> None:
    """Regenerate the declared patches, then re-render the golden files under argocd/golden/ (review the
    diff before committing it)."""
    from spira.manifests import generate, network_policies, queue_patches, render, training

    for path in [*generate.write(), *queue_patches.write(), *network_policies.write(), *training.write()]:
        typer.echo(f"wrote {path.relative_to(render.REPO_ROOT)}")
    for env in render.ENVIRONMENTS:
        path = render.write_golden(env)
        typer.echo(f"wrote {path.relative_to(render.REPO_ROOT)}")
