"""The `spira` command: one root whose sub-commands load lazily.

Each area owns its own Typer app; the root only names them, so `spira --help` starts fast and a command
never imports torch, BentoML or Pulumi unless it needs them.
"""

from __future__ import annotations

import importlib
import sys

import click
import typer.main

# name -> (module:attribute of a typer.Typer, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "stack": ("spira.stack.cli:app", "Local stack of real services: OpenBao, SeaweedFS, MLflow, registry."),
    "data": ("training.data_cli:app", "Datasets: synthetic SPIRA-like data, CSV checks."),
    "pipeline": ("training.cli:app", "Training pipeline stages: features, train, evaluate, publish."),
    "serve": ("serving.cli:serve", "Serve the model over HTTP (BentoML)."),
    "predict": ("serving.cli:predict", "Predict offline, one JSON line per file."),
    "bento": ("serving.cli:bento_app", "Build and inspect the model Bento."),
    "gate": ("spira.gate_cli:gate", "Promotion gate: Locust load test judged against SLO thresholds."),
    "secrets": ("spira.secrets.cli:app", "Vault secrets: seed, status, rotate."),
    "manifests": ("spira.manifests.cli:app", "GitOps manifests: render, check, golden files."),
    "infra": ("infra.cli:app", "Pulumi program under mocks: plan, diff."),
    "image": ("ci.cli:app", "Images: build, ephemeral test by digest, set-image, verify-promotion."),
    "demo": ("spira.demo:demo", "The whole delivery pipeline on local services."),
}


def _load(target: str) -> click.Command:
    module_name, attr = target.split(":")
    obj = getattr(importlib.import_module(module_name), attr)
    if isinstance(obj, typer.Typer):
        return typer.main.get_command(obj)
    if isinstance(obj, click.Command):
        return obj
    # a plain function: make a single command of it
    app = typer.Typer(add_completion=False)
    app.command()(obj)
    return typer.main.get_command(app)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, _ = COMMANDS[cmd_name]
        try:
            cmd = _load(target)
        except ModuleNotFoundError as exc:
            raise click.ClickException(f"'spira {cmd_name}' is unavailable: {exc}") from exc
        cmd.name = cmd_name
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # help text from the table, without importing every area
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """SPIRA Platform: train, serve, gate and promote the SPIRA respiratory-insufficiency model."""


def main() -> None:
    sys.exit(cli.main(standalone_mode=True))


if __name__ == "__main__":
    main()
