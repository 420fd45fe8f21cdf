"""The `spira` command: one root whose sub-commands load lazily.

Each area owns its own Typer app; the root only names them, so `spira --help` starts fast and a command
never imports torch, BentoML or Pulumi unless it needs them.
"""

from __future__ import annotations

import importlib
import sys

import click as plain_click
import typer
import typer.core
import typer.main

# typer 0.29 vendors its own click; the root is built on typer's group so typer's Exit and usage errors
# are handled here, and plain-click errors are caught in main().
from typer import _click as tclick

# name -> (module:attribute of a typer.Typer or a function, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "stack": ("spira.stack.cli:app", "Local stack of real services: OpenBao, SeaweedFS, MLflow, registry."),
    "data": ("training.data_cli:app", "Datasets: synthetic SPIRA-like data, CSV checks."),
    "pipeline": ("training.cli:app", "Training pipeline stages: features, train, evaluate, publish."),
    "holdout": ("training.holdout_cli:app", "The clinical gate's frozen holdout: freeze a dataset CSV."),
    "serve": ("spira.bento.cli:serve", "Serve the model over HTTP (BentoML)."),
    "predict": ("spira.bento.cli:predict", "Predict offline, one JSON line per file."),
    "bento": ("spira.bento.cli:bento_app", "Import the model and build the Bento."),
    "gate": (
        "spira.clinical.cli:gate",
        "Promotion gates: Locust load test judged against SLOs; `gate clinical`: non-inferiority on the holdout.",
    ),
    "secrets": ("spira.secrets.cli:app", "Vault secrets: seed, status, rotate."),
    "manifests": ("spira.manifests.cli:app", "GitOps manifests: render, check, golden files."),
    "infra": ("infra.cli:app", "Pulumi program under mocks: plan, diff."),
    "image": ("ci.cli:app", "Images: build, ephemeral test by digest, set-image, verify-promotion."),
    "promote": (
        "ci.promote_cli:app",
        "Promotion: `promote revert --env ENV` back to the last digest that passed.",
    ),
    "evidence": (
        "spira.evidence.cli:app",
        "Promotion evidence: model cards in the object store; `evidence show`.",
    ),
    "demo": ("spira.demo:demo", "The whole delivery pipeline on local services."),
    "workflow": (
        "spira.workflow.cli:app",
        "Continuous training: `workflow render ENV` prints the Argo Workflows objects.",
    ),
    "intake": ("spira.queue_cli:intake", "Serve the intake API of the burst path (uploads → the queue)."),
    "worker": ("spira.queue_cli:worker", "Run one queue worker: jobs from NATS JetStream → results."),
    "submit": (
        "spira.queue_cli:submit",
        "Hospital client: send a folder of recordings, resumable; --results.",
    ),
    "backup": ("spira.backup.cli:app", "Back up and restore the local stack: Vault, every object, MLflow."),
    "archive": ("spira.archive.cli:app", "Patient archive retention: purge uploads older than their period."),
}
# Commands that run as a workload: from an operator's shell they act as this service of the local stack
# (spira.workload).
WORKLOADS: dict[str, str] = {
    "pipeline": "training",
    "holdout": "training",
    "serve": "serving",
    "bento": "training",
    "evidence": "training",
}


def _load(name: str, target: str):
    module_name, attr = target.split(":")
    obj = getattr(importlib.import_module(module_name), attr)
    if isinstance(obj, typer.Typer):
        return typer.main.get_command(obj)
    if isinstance(obj, tclick.Command | plain_click.Command):
        return obj
    app = typer.Typer(add_completion=False)  # a plain function becomes a single command
    app.command(name=name)(obj)
    return typer.main.get_command(app)


class LazyGroup(typer.core.TyperGroup):
    def list_commands(self, ctx) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx, cmd_name: str):
        if cmd_name not in COMMANDS:
            return None
        if cmd_name in WORKLOADS:
            from spira.workload import act_as

            act_as(WORKLOADS[cmd_name])
        try:
            cmd = _load(cmd_name, COMMANDS[cmd_name][0])
        except ModuleNotFoundError as exc:
            raise tclick.ClickException(f"'spira {cmd_name}' is unavailable: {exc}") from exc
        cmd.name = cmd_name
        return cmd

    def format_commands(self, ctx, formatter) -> None:
        # help text from the table, without importing every area
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])


cli = LazyGroup(
    name="spira",
    help="SPIRA Platform: train, serve, gate and promote the SPIRA respiratory-insufficiency model.",
    rich_markup_mode=None,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def main(argv: list[str] | None = None) -> None:
    try:
        result = cli.main(args=argv, prog_name="spira", standalone_mode=False)
    except (typer.Exit, plain_click.exceptions.Exit) as exc:
        sys.exit(exc.exit_code)
    except (tclick.exceptions.NoArgsIsHelpError, plain_click.exceptions.NoArgsIsHelpError) as exc:
        exc.show()
        sys.exit(0)
    except (tclick.exceptions.ClickException, plain_click.ClickException) as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (typer.Abort, plain_click.exceptions.Abort, KeyboardInterrupt):
        print("Aborted.", file=sys.stderr)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
