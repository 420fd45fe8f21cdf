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


ImageArg = Annotated[str, typer.Argument(help="model | loadtest | intake | training | training-gpu")]


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
    intake: Annotated[str | None, typer.Option(help="tested intake reference or digest")] = None,
    training: Annotated[
        str | None,
        typer.Option(help="tested training reference or digest (every step of the WorkflowTemplate)"),
    ] = None,
    model_version: Annotated[
        str | None, typer.Option(help="written to the Rollout's spira.dev/model-version")
    ] = None,
    record: Annotated[
        str | None, typer.Option(help="commit with Spira-Tested-Image trailers; value: the test run")
    ] = None,
    golden: Annotated[bool, typer.Option(help="regenerate argocd/golden")] = True,
    evidence: Annotated[
        str | None,
        typer.Option(help="with --record: the Spira-Evidence trailer (`spira evidence build`'s last line)"),
    ] = None,
) -> None:
    """Write tested digests into argocd/base/kustomization.yaml (one line each) and regenerate golden files."""
    from ci.promotion import deploy_tested
    from ci.set_image import SetImageError

    given = {"loadtest": loadtest, "intake": intake, "training": training, "model": model}
    wanted = {k: v for k, v in given.items() if v}
    if not wanted:
        raise _fail(ValueError("give --model, --loadtest, --intake and/or --training"), 2)
    try:
        deployed = deploy_tested(REPO, wanted, model_version, record, golden, evidence)
    except SetImageError as exc:
        raise _fail(exc, 2) from exc
    for path in deployed.changed:
        typer.echo(f"changed {path}")
    if deployed.commit:
        typer.echo(f"recorded in {deployed.commit}")
    elif record:
        # a rerun with the same tested digests: deployed here already, recorded by an earlier commit
        typer.echo("unchanged: these digests are already deployed here; nothing to record")


def _local_signing_dir() -> Path:
    return Path(os.environ.get("SPIRA_HOME") or ".spira").resolve() / "signing"


@app.command("keygen")
def keygen_cmd(
    out: Annotated[Path, typer.Option(help="directory for cosign.key (0600) and cosign.pub")],
) -> None:
    """A new ECDSA P-256 signing pair (CI: store cosign.key as the SPIRA_SIGNING_KEY secret)."""
    from ci.signing import generate_key

    private, public = generate_key(out)
    typer.echo(f"{private}\n{public}")


@app.command("sign")
def sign_cmd(
    image: ImageArg,
    ref: Annotated[str, typer.Argument(help="the tested image, registry/spira/<image>@sha256:...")],
    report: Annotated[Path, typer.Option(help="the ephemeral test's report.json (must say passed)")],
    key: Annotated[
        Path | None,
        typer.Option(help="private key PEM; default SPIRA_SIGNING_KEY, else the local stack's own pair"),
    ] = None,
    local_ref: Annotated[
        str | None,
        typer.Option(help="the local image (its SBOM is read by running it); default this commit's"),
    ] = None,
) -> None:
    """SBOM + signature + signed SLSA provenance beside a tested digest (cosign's .sig/.att layout)."""
    import json

    from ci.attest import sign_tested, signing_key
    from ci.build import git_sha
    from ci.set_image import SetImageError, parse_digest
    from ci.signing import KEY_ENV, ensure_local_key

    try:
        digest = parse_digest(ref)
    except SetImageError as exc:
        raise _fail(exc, 2) from exc
    repository = ref.split("@", 1)[0]
    if key is None and not os.environ.get(KEY_ENV):
        key = ensure_local_key(_local_signing_dir().parent)[0]

    body = report.read_bytes()
    local = local_ref or f"localhost/spira/{image}:{git_sha(REPO)[:12]}"
    try:
        signed = sign_tested(
            _podman(),
            repository.split("/", 1)[0],
            image,
            local,
            digest,
            signing_key(key),
            body,
            bool(json.loads(body).get("passed")),
            "",
            repository=repository,
        )
    except Exception as exc:
        raise _fail(exc) from exc
    typer.echo(
        f"{signed.repository}@{signed.digest} signed: {signed.signature_tag}, {signed.attestation_tag}"
    )


def _public_key(path: Path | None) -> bytes:
    """--public-key, else SPIRA_SIGNING_PUBLIC_KEY (a path), else the local stack's cosign.pub."""
    chosen = path or (
        Path(os.environ["SPIRA_SIGNING_PUBLIC_KEY"]) if os.environ.get("SPIRA_SIGNING_PUBLIC_KEY") else None
    )
    chosen = chosen or _local_signing_dir() / "cosign.pub"
    if not chosen.exists():
        raise _fail(FileNotFoundError(f"no public key at {chosen}: give --public-key (CI's cosign.pub)"), 2)
    return chosen.read_bytes()


PublicKeyOpt = Annotated[
    Path | None,
    typer.Option(help="CI's public key PEM; default SPIRA_SIGNING_PUBLIC_KEY, else the local stack's"),
]


@app.command("verify")
def verify_cmd(
    ref: Annotated[str, typer.Argument(help="registry/spira/<image>@sha256:...")],
    public_key: PublicKeyOpt = None,
) -> None:
    """Verify one digest's signature, provenance and SBOM; print what the provenance says."""
    from ci.oci import Registry
    from ci.signing import VerificationError, verify_image

    repository, _, digest = ref.partition("@")
    try:
        trusted = verify_image(
            Registry(repository.split("/", 1)[0]), repository, digest, _public_key(public_key)
        )
    except (VerificationError, ValueError) as exc:
        raise _fail(exc) from exc
    typer.echo(
        f"OK {ref}: signature, provenance and SBOM verify with the key; revision {trusted.revision}, builder {trusted.builder}, "
        f"run {trusted.invocation}, SBOM of {trusted.sbom_components} components"
    )


@app.command("verify-promotion")
def verify_promotion_cmd(
    candidate: Annotated[str, typer.Option(help="the main merge candidate")] = "HEAD",
    staging: Annotated[str, typer.Option(help="the staging branch as fetched")] = "origin/staging",
    public_key: PublicKeyOpt = None,
    registry: Annotated[
        str | None,
        typer.Option(help="host:port standing in for the kustomization's registry (local stack, tests)"),
    ] = None,
) -> None:
    """Refuse unless every digest the candidate carries was deployed from staging AND carries CI's signature
    and signed provenance (a passing test, an SBOM) in its registry."""
    from ci.promotion import SignatureCheck, verify_promotion

    verdict = verify_promotion(REPO, candidate, staging, SignatureCheck(_public_key(public_key), registry))
    for line in verdict.lines:
        typer.echo(line)
    if not verdict.ok:
        raise typer.Exit(1)


if (
    __name__ == "__main__"
):  # `python -m ci.cli ...` where only PyYAML and typer are installed (promote workflow)
    app()
