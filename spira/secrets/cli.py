"""`spira secrets seed | status | rotate --env E`: thin; the work is in seed, status and rotation."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from infra.vault import layout
from spira.secrets.store import SecretsError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Vault secrets of an environment: seed, status, rotate (operators only).",
)
err = Console(stderr=True, soft_wrap=True)

EnvOpt = typer.Option(..., "--env", "-e", help=f"Environment: {', '.join(layout.ENVIRONMENTS)}.")
EngineOpt = typer.Option(
    None,
    "--engine",
    help="Object-store engine (seaweedfs | minio); default: local seaweedfs, clusters from "
    "the stack's Pulumi config.",
)


def _fail(message: str, code: int = 1) -> None:
    # One line on stderr, whatever the terminal width: operators grep logs for it.
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _target(env: str, engine: str | None):
    from spira.secrets.wiring import Target

    return Target(env, engine=engine)


def _guard(fn):
    """Run fn, turning every failure an operator can act on into one line and a non-zero exit."""
    import botocore.exceptions
    import hvac.exceptions

    try:
        return fn()
    except SecretsError as exc:
        _fail(str(exc))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        _fail(f"object store: {exc}")
    except hvac.exceptions.VaultError as exc:
        _fail(f"Vault: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}")
    except KeyboardInterrupt:
        _fail("interrupted; the journal records where: rerun the same command to resume or clean up", 130)


@app.command()
def seed(
    env: str = EnvOpt,
    engine: str | None = EngineOpt,
    mlflow_url: str | None = typer.Option(
        None,
        "--mlflow-url",
        help="Where to reach MLflow's user API (a cluster: a `kubectl port-forward` of its Service); "
        "default: the environment's tracking URI.",
    ),
) -> None:
    """Create each service's object-store user and key and write its secret, then each MLflow workload's
    MLflow user (into the same secret), the NATS users and the candidate step's GitHub credential (copied
    from what the Pulumi program wrote); existing secrets and users are kept."""
    from spira.secrets.mlflow_users import seed_mlflow_users
    from spira.secrets.seed import seed as do_seed

    target = _guard(lambda: _target(env, engine))
    outcome = _guard(lambda: do_seed(env, target.vault_client, target.object_store, target.endpoints))
    users = _guard(lambda: seed_mlflow_users(env, target.vault_client, target.mlflow_users(mlflow_url)))
    # the intake's and workers' NATS users (infra/queue_auth.py): a password each, in their nats_url; a
    # cluster's workloads reach the declared Service (tls://), the local stack's keep their own URL
    from infra.environments import declared
    from spira.secrets.nats_users import seed_nats_users

    address = declared().service("nats").url if declared().environment(env).cluster else None
    nats_users = _guard(lambda: seed_nats_users(env, target.vault_client, address))
    # the training workflow's candidate step: the GitHub credential `pulumi up` wrote to candidate-dispatch
    from spira.secrets.dispatch import seed_dispatch

    dispatch = _guard(lambda: seed_dispatch(env, target.vault_client))
    table = Table(title=f"secrets seeded in {env}")
    table.add_column("path")
    table.add_column("outcome")
    table.add_column("MLflow user")
    for service, what in outcome.items():
        table.add_row(
            layout.secret_ref(env, service),
            what
            + (f", NATS user {nats_users[service]}" if service in nats_users else "")
            + (f", GitHub dispatch {dispatch}" if service == "training" else ""),
            users.get(service, "-"),
        )
    Console().print(table)


@app.command()
def status(env: str = EnvOpt) -> None:
    """Each secret: path, current version, age, last rotated (and an unfinished rotation, if any)."""
    from spira.secrets.status import human_age, secret_status

    target = _guard(lambda: _target(env, None))
    rows = _guard(lambda: secret_status(env, target.secrets, datetime.now(UTC)))
    table = Table(title=f"Vault secrets of {env}")
    for col in ("path", "current version", "age", "last rotated", "rotation"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.path,
            "-" if r.version is None else str(r.version),
            human_age(r.age_s),
            r.last_rotated or "never",
            f"[red]{r.rotation}: rerun rotate[/]" if r.rotation else "-",
        )
    Console(width=160).print(table)


@app.command()
def rotate(
    env: str = EnvOpt,
    service: str = typer.Option(..., "--service", "-s", help="Service whose credential to rotate."),
    key: str = typer.Option("s3", "--key", help="Which credential: s3."),
    consumer: list[str] = typer.Option(
        [],
        "--consumer",
        help="Only these consumers: a /metrics URL whose spira_secret_version gauge must show the new "
        "version (repeatable), instead of discovering every consumer.",
    ),
    consumer_ttl: float | None = typer.Option(
        None,
        "--consumer-ttl",
        help="Wait this cache TTL (seconds) + --margin instead of discovering consumers (e.g. 0 for a "
        "leaked key that must die now).",
    ),
    margin: float = typer.Option(
        10.0, "--margin", help="Seconds to wait beyond the TTL (or after the consumers, at most 5)."
    ),
    consumer_timeout: float = typer.Option(
        300.0,
        "--consumer-timeout",
        help="Give up waiting for consumers after this many seconds (both keys stay valid; rerun to resume).",
    ),
    kube_context: str | None = typer.Option(
        None,
        "--kube-context",
        help="Clusters: the kubeconfig context to discover consumers in (default: current).",
    ),
    engine: str | None = EngineOpt,
) -> None:
    """Rotate a service's credential with no downtime; rerun to resume an interrupted rotation.

    By default every consumer it can see is waited for, as the service reads its key: each serving pod
    (ready or terminating) or registered local process until its version gauge shows the new version;
    MLflow restarted until every instance is new and ready; training runs that started with the old key
    until they end (their leases)."""
    from spira.secrets.consumers import DiscoveredWait, MetricsWait, TtlWait
    from spira.secrets.rotation import check_rotatable, utc_now
    from spira.secrets.rotation import rotate as do_rotate

    _guard(lambda: check_rotatable(service, key))
    target = _guard(lambda: _target(env, engine))
    short_margin = min(margin, 5.0)
    if consumer:
        wait = MetricsWait(consumer, consumer_timeout, clock=utc_now, margin_s=short_margin)
    elif consumer_ttl is not None:
        wait = TtlWait(consumer_ttl, margin, clock=utc_now)
    else:
        from spira.secrets.fleet import reads

        _guard(lambda: reads(service))
        wait = DiscoveredWait(
            service,
            _guard(lambda: target.fleet(kube_context)),
            _guard(lambda: target.run_leases),
            consumer_timeout,
            clock=utc_now,
            margin_s=short_margin,
            say=lambda m: err.print(f"    {m}", highlight=False),
        )

    def say(step: str, journal: dict) -> None:
        detail = {
            "resumed": f"resuming an unfinished rotation ({journal.get('state')})",
            "cleaned_up": f"cleaned up an interrupted rotation: {journal.get('note')}",
            "started": f"journal written; old key {journal.get('old_access_key')} (version {journal.get('from_version')})",
            "key_created": f"new key {journal.get('new_access_key')} created",
            "published": f"version {journal.get('to_version')} written (check-and-set); waiting: {wait.describe()}",
            "consumers_ready": "consumers use the new version",
            "revoking": f"revoking {journal.get('old_access_key')}",
            "revoked": "old key revoked",
            "done": "rotation recorded",
        }.get(step, step)
        err.print(f"  {step}: {detail}", highlight=False)

    result = _guard(
        lambda: do_rotate(env, service, target.secrets, target.object_store, wait, on_step=say, key=key)
    )
    took = (result.finished_at - result.started_at).total_seconds()
    err.print(
        f"rotated {layout.secret_ref(env, service)} {key}: version {result.from_version} → {result.to_version}, "
        f"{result.old_access_key} revoked, {result.new_access_key} in use ({took:.1f}s"
        + (", resumed" if result.resumed else "")
        + ")",
        highlight=False,
    )
