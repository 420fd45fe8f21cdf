"""`spira promote revert --env ENV`: the environment branch back to the last digest that passed.

Run in a clone of the GitOps repository (the Rollouts notification's workflow checks it out; the demo's
clone locally). stdout: the revert commit and its message; exit 2 when there is nothing to revert to.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Promotion: revert an environment.")


@app.callback()
def _group() -> None:
    """Promotion of tested digests through the environment branches."""


def _analysis(value: str | None) -> str:
    if value is None:
        return ""
    if value == "-":
        return sys.stdin.read()
    if value.startswith("@"):
        return Path(value[1:]).read_text()
    return value


def _unchecked(record) -> tuple[bool, str]:
    return True, ""


def _verified(root: Path, public_key: Path | None, registry: str | None):
    """The target's check: CI's signature and signed provenance in its registry (ci/promotion.py)."""
    from ci.cli import _public_key
    from ci.promotion import SignatureCheck, TestedRecord, _signed, git
    from ci.set_image import KUSTOMIZATION, image_entries

    check = SignatureCheck(_public_key(public_key), registry)

    def trusted(record: TestedRecord) -> tuple[bool, str]:
        entry = image_entries(git(root, "show", f"{record.commit}:{KUSTOMIZATION}"))[record.image]
        return _signed(check, record.image, entry.new_name, record.digest)

    return trusted


@app.command("revert")
def revert_cmd(
    env: Annotated[str, typer.Option("--env", help="cluster environment (infra/environments.yaml)")],
    repo: Annotated[Path, typer.Option(help="the GitOps clone")] = Path("."),
    analysis: Annotated[
        str | None,
        typer.Option(help="the analysis evidence for the message: text, @FILE, or - for stdin"),
    ] = None,
    signatures: Annotated[
        bool,
        typer.Option(help="require CI's signature and signed provenance of the target digest"),
    ] = True,
    public_key: Annotated[
        Path | None,
        typer.Option(help="CI's public key PEM; default SPIRA_SIGNING_PUBLIC_KEY, else the local stack's"),
    ] = None,
    registry: Annotated[
        str | None, typer.Option(help="host:port standing in for the kustomization's registry")
    ] = None,
    push: Annotated[bool, typer.Option(help="push the branch to origin")] = False,
    golden: Annotated[bool, typer.Option(help="regenerate argocd/golden")] = True,
) -> None:
    """Commit, on ENV's branch, the images of the newest promotion record that passed, other than the
    digest the branch names now; the analysis evidence goes into the message."""
    from ci.promotion import GitError, git
    from ci.revert import RevertError, revert
    from ci.set_image import SetImageError
    from infra.environments import declared

    try:
        branch = str(declared().cluster(env).branch)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    root = repo.resolve()

    trusted = _verified(root, public_key, registry) if signatures else _unchecked
    try:
        done = revert(root, env, branch, _analysis(analysis), trusted, golden=golden)
        if push:
            git(root, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    except (RevertError, GitError, SetImageError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"reverted {branch} in {done.commit}")
    typer.echo(git(root, "show", "-s", "--format=%B", done.commit).rstrip())
