"""`spira infra plan|diff`: the Pulumi program run offline under mocks (no engine, no cloud); `spira infra
smoke`: after a real `pulumi up`, what the mocks cannot show, checked on the cluster."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from typer import _click as click  # typer 0.29 vendors click: its errors are what the root handles

from infra.offline import STACKS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Pulumi program under mocks: plan, diff; smoke checks on a real cluster.",
)

# The properties worth a glance per resource type (dotted input paths).
KEY_PROPERTIES: dict[str, tuple[str, ...]] = {
    "aws:eks/cluster:Cluster": ("version", "encryptionConfig.resources"),
    "aws:eks/nodeGroup:NodeGroup": ("amiType", "instanceTypes", "scalingConfig", "taints", "labels"),
    "aws:eks/addon:Addon": ("addonName",),
    "aws:rds/instance:Instance": ("engine", "engineVersion", "instanceClass", "allocatedStorage", "multiAz",
                                  "storageEncrypted"),
    "aws:ecr/repository:Repository": ("name", "imageTagMutability", "imageScanningConfiguration.scanOnPush"),
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("cidrBlock", "availabilityZone"),
    "aws:kms/key:Key": ("description", "enableKeyRotation"),
    "kubernetes:helm.sh/v3:Release": ("chart", "version", "namespace"),
    "kubernetes:argoproj.io/v1alpha1:Application": ("metadata.name", "spec.source.targetRevision", "spec.source.path"),
    "kubernetes:argoproj.io/v1alpha1:AppProject": ("metadata.name", "spec.sourceRepos"),
    "kubernetes:apps/v1:Deployment": ("metadata.name", "spec.replicas"),
    "kubernetes:storage.k8s.io/v1:StorageClass": ("metadata.name", "parameters"),
    "vault:jwt/authBackend:AuthBackend": ("path", "boundIssuer"),
    "vault:jwt/authBackendRole:AuthBackendRole": ("roleName", "boundSubject", "tokenPolicies"),
    "vault:index/policy:Policy": ("name",),
    "vault:index/mount:Mount": ("path", "type", "options"),
    "vault:kv/secretBackendV2:SecretBackendV2": ("maxVersions",),
    "vault:kv/secretV2:SecretV2": ("mount", "name"),
    "vault:index/audit:Audit": ("type", "options"),
}  # fmt: skip


def _get(value: Any, path: str) -> Any:
    for step in path.split("."):
        if not isinstance(value, dict) or step not in value:
            return None
        value = value[step]
    return value


def key_properties(typ: str, inputs: dict[str, Any]) -> str:
    parts = []
    for path in KEY_PROPERTIES.get(typ, ()):
        v = _get(inputs, path)
        if v is not None:
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            parts.append(f"{path}={v}")
    return " ".join(parts)


@app.command()
def plan(
    stack: str = typer.Option(..., "--stack", help=" | ".join(STACKS)),
    components: bool = typer.Option(False, help="also list the component resources"),
) -> None:
    """Run the program for a stack under mocks and list its resources."""
    from infra import offline

    if stack not in STACKS:
        # a usage error of typer's click: the `spira` root prints it as a usage error, exit 2
        raise click.exceptions.UsageError(f"--stack must be one of {', '.join(STACKS)}, not {stack!r}")
    result = offline.run(stack)
    table = Table(title=f"spira-platform / {stack} (offline plan under mocks)")
    for col in ("type", "name", "key properties"):
        table.add_column(col, overflow="fold")
    shown = [r for r in result.resources if r.custom or components]
    for r in shown:
        table.add_row(r.type, r.name, key_properties(r.type, r.inputs))
    console = Console()
    console.print(table)
    custom = sum(1 for r in result.resources if r.custom)
    console.print(
        f"{custom} resources, {len(result.resources) - custom} components; outputs: {', '.join(result.outputs)}"
    )


@app.command()
def diff() -> None:
    """Show how production differs from staging, and fail unless exactly the allowlist's differences remain."""
    from infra import offline, stackdiff

    # The clusters in infra/environments.yaml's order: the first is promoted from, the last to.
    left_env, right_env = STACKS[0], STACKS[-1]
    left, right = offline.run(left_env), offline.run(right_env)
    differences = stackdiff.diff(left, left_env, right, right_env)
    verdict = stackdiff.judge(differences, stackdiff.load_allowlist())
    table = Table(title=f"{left_env} -> {right_env} (environment name replaced by <env>)")
    for col in ("type", "name", "path", left_env, right_env, "allowed as"):
        table.add_column(col, overflow="fold")
    allowlist = stackdiff.load_allowlist()
    for d in differences:
        allowed = next((a.category for a in allowlist if a.covers(d)), "[red]NOT ALLOWED[/red]")
        table.add_row(d.type, d.name, d.path, d.left, d.right, allowed)
    console = Console()
    console.print(table)
    for a in verdict.unused:
        console.print(
            f"[red]stale allowlist entry[/red] {a.type} {a.name} {a.path}: no such difference any more"
        )
    if not verdict.ok:
        raise typer.Exit(code=1)
    console.print(f"{len(differences)} differences, all in the allowlist ({stackdiff.ALLOWLIST.name})")


@app.command()
def smoke(stack: str = typer.Option(..., "--stack", help=" | ".join(STACKS))) -> None:
    """After `pulumi up`: Vault CA ConfigMap, Prometheus, Cluster Autoscaler, operator OIDC role, MLflow login
    (kubectl, vault and pulumi of the operator's shell; see docs/infra.md)."""
    from infra import smoke as probes

    if stack not in STACKS:
        raise click.exceptions.UsageError(f"--stack must be one of {', '.join(STACKS)}, not {stack!r}")
    try:
        outcomes = probes.run(stack)
    except RuntimeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for o in outcomes:
        typer.echo(f"{'ok  ' if o.ok else 'FAIL'} {o.probe.what}")
        if not o.ok:
            typer.echo(f"     $ {' '.join(o.probe.argv)}\n     {o.output[-500:]}")
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)
