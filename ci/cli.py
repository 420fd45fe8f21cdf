"""`spira image`: setup, build, push, test, preview, set-image, verify-promotion.

stdout carries only what a pipeline consumes (an image reference, a verdict); progress goes to stderr.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Images: build, ephemeral test by digest, set-image, verify-promotion.",
)

REPO = Path(__file__).resolve().parent.parent


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _podman():
    from ci.podman import Podman, PodmanConfig

    # SPIRA_PODMAN_HOME, else the user cache the tests use too: one base image and layer cache per machine
    return Podman(PodmanConfig.at())


def _registry(explicit: str | None) -> str:
    """--registry, else SPIRA_REGISTRY, else the running local stack's loopback registry."""
    if explicit or os.environ.get("SPIRA_REGISTRY"):
        return explicit or os.environ["SPIRA_REGISTRY"]
    from spira.stack import LocalStack, StackConfig, StackError

    try:
        registry = LocalStack(StackConfig.load()).info().registry
    except StackError as exc:
        raise typer.BadParameter(f"no --registry and no running local stack ({exc})") from exc
    if not registry:
        raise typer.BadParameter("the local stack has no registry (apt-get install docker-registry)")
    return registry


def _fail(exc: Exception, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code)


@app.command("setup")
def setup_cmd() -> None:
    """Write the podman configuration and make the base and infra images (cached by recipe)."""
    from ci.base_image import ensure_base, ensure_infra

    podman = _podman()
    base, infra = ensure_base(podman, say=_say), ensure_infra(podman, say=_say)
    podman.with_infra(infra)
    typer.echo(f"{base}\n{infra}")


ImageArg = Annotated[str, typer.Argument(help="model | loadtest")]


@app.command("build")
def build_cmd(
    image: ImageArg,
    registry: Annotated[
        str | None, typer.Option(help="host:port; default SPIRA_REGISTRY or the local stack's")
    ] = None,
    push: Annotated[bool, typer.Option(help="push and print name@sha256:... (else the local ref)")] = True,
    base_image: Annotated[
        str | None, typer.Option(help="pinned upstream base; default the debootstrap base")
    ] = None,
    torch_flavour: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    torch_index_url: Annotated[
        str | None, typer.Option(help="extra index carrying the flavour's torch")
    ] = None,
    bento_dir: Annotated[
        Path | None, typer.Option(help="exported Bento (model image); default build/bento")
    ] = None,
    model_version: Annotated[str | None, typer.Option(help="default: read from the Bento")] = None,
) -> None:
    """Build IMAGE once from a staged, hermetic context; with --push print the registry's digest reference."""
    from ci.build import BuildOptions, build
    from ci.build import push as do_push

    podman = _podman()
    reg = _registry(registry) if push else "unused"
    try:
        built = build(
            podman,
            BuildOptions(image, reg, base_image, torch_flavour, torch_index_url, bento_dir, model_version),
            REPO,
            say=_say,
        )
        _say(f"built {built.local_ref} ({built.image_id[:12]}) in {built.build_s:.0f}s")
        typer.echo(do_push(podman, built, reg).ref if push else built.local_ref)
    except Exception as exc:
        raise _fail(exc) from exc


@app.command("push")
def push_cmd(
    image: ImageArg,
    registry: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Push the image built from this commit; print name@sha256:... as the registry names it."""
    from ci.build import BuiltImage, git_sha, push

    podman = _podman()
    local_ref = f"localhost/spira/{image}:{git_sha(REPO)[:12]}"
    if not podman.image_exists(local_ref):
        raise _fail(FileNotFoundError(f"{local_ref} is not built (spira image build {image} --no-push)"))
    built = BuiltImage(
        image, local_ref, podman.text("image", "inspect", "--format", "{{.Id}}", local_ref), {}, 0.0
    )
    typer.echo(push(podman, built, _registry(registry)).ref)


@app.command("test")
def test_cmd(
    model_ref: Annotated[str, typer.Argument(help="registry/spira/model@sha256:...")],
    model_version: Annotated[str, typer.Option(help="the version the model must answer with")],
    loadtest_ref: Annotated[
        str | None, typer.Option(help="gate image by digest; default the checkout's gate")
    ] = None,
    contract_tests: Annotated[Path, typer.Option()] = Path("tests/contract"),
    out: Annotated[Path, typer.Option(help="report.json, model.log, contract and gate output")] = Path(
        "build/ephemeral"
    ),
    gate_duration: Annotated[int, typer.Option(help="seconds of load")] = 10,
) -> None:
    """Ephemeral test BY DIGEST: fresh container, throwaway stack, /readyz, contract tests, short gate."""
    from ci.ephemeral import EphemeralOptions, run_ephemeral

    if "@sha256:" not in model_ref:
        raise _fail(ValueError(f"test images by digest, not by tag: {model_ref}"), 2)
    report = run_ephemeral(
        _podman(),
        EphemeralOptions(
            model_ref, model_version, loadtest_ref, contract_tests, out, gate_duration_s=gate_duration
        ),
        say=_say,
    )
    for step in report.steps:
        _say(f"  {step}")
    verdict = "PASS" if report.passed else "FAIL"
    typer.echo(f"{verdict} {model_ref} in {report.total_s}s" + (f": {report.error}" if report.error else ""))
    if not report.passed:
        raise typer.Exit(1)


@app.command("preview")
def preview_cmd(
    model_ref: Annotated[str, typer.Argument(help="registry/spira/model@sha256:...")],
    token_dir: Annotated[Path, typer.Option(help="where the pod's Vault token file is kept")] = Path(
        "build/preview/token"
    ),
) -> None:
    """Play the rendered Rollout pod as the preview (podman kube play, by digest); print its JSON."""
    from ci.preview import play_preview
    from spira.stack import LocalStack, StackConfig, StackError

    if "@sha256:" not in model_ref:
        raise _fail(ValueError(f"preview images by digest, not by tag: {model_ref}"), 2)
    try:
        stack = LocalStack(StackConfig.load()).info()
    except StackError as exc:
        raise _fail(exc, 2) from exc
    try:
        preview = play_preview(_podman(), stack, model_ref, token_dir.resolve(), say=_say)
    except (RuntimeError, TimeoutError, ValueError) as exc:
        raise _fail(exc) from exc
    for change in preview.changed:
        _say(f"  translated: {change}")
    typer.echo(preview.to_json())


@app.command("preview-stop")
def preview_stop_cmd(
    pod: Annotated[str, typer.Argument(help="the pod name `spira image preview` printed")],
) -> None:
    """Remove a preview pod."""
    from ci.preview import stop_preview

    stop_preview(_podman(), pod)


@app.command("set-image")
def set_image_cmd(
    model: Annotated[str | None, typer.Option(help="tested model reference or digest")] = None,
    loadtest: Annotated[str | None, typer.Option(help="tested loadtest reference or digest")] = None,
    model_version: Annotated[
        str | None, typer.Option(help="written to the Rollout's spira.dev/model-version")
    ] = None,
    record: Annotated[
        str | None, typer.Option(help="commit with Spira-Tested-Image trailers; value: the test run")
    ] = None,
    golden: Annotated[bool, typer.Option(help="regenerate argocd/golden")] = True,
) -> None:
    """Write tested digests into argocd/base/kustomization.yaml (one line each) and regenerate golden files."""
    from ci.promotion import deploy_tested
    from ci.set_image import SetImageError

    wanted = {k: v for k, v in {"loadtest": loadtest, "model": model}.items() if v}
    if not wanted:
        raise _fail(ValueError("give --model and/or --loadtest"), 2)
    try:
        deployed = deploy_tested(REPO, wanted, model_version, record, golden)
    except SetImageError as exc:
        raise _fail(exc, 2) from exc
    for path in deployed.changed:
        typer.echo(f"changed {path}")
    if deployed.commit:
        typer.echo(f"recorded in {deployed.commit}")
    elif record:
        # a rerun with the same tested digests: deployed here already, recorded by an earlier commit
        typer.echo("unchanged: these digests are already deployed here; nothing to record")


@app.command("verify-promotion")
def verify_promotion_cmd(
    candidate: Annotated[str, typer.Option(help="the main merge candidate")] = "HEAD",
    staging: Annotated[str, typer.Option(help="the staging branch as fetched")] = "origin/staging",
) -> None:
    """Refuse unless every digest the candidate carries was tested and deployed from staging."""
    from ci.promotion import verify_promotion

    verdict = verify_promotion(REPO, candidate, staging)
    for line in verdict.lines:
        typer.echo(line)
    if not verdict.ok:
        raise typer.Exit(1)


if (
    __name__ == "__main__"
):  # `python -m ci.cli ...` where only PyYAML and typer are installed (promote workflow)
    app()
