"""The build-and-test workflow's steps as one program, so CI and a developer run the same sequence.

build-and-test: a loopback registry of its own -> build each image once -> push -> ephemeral test of
the model by digest with the gate image by digest, of the intake by digest (ci/ephemeral_intake.py), and
of the training image by digest: every step the WorkflowTemplate renders with it is a command it accepts
(ci/ephemeral_training.py) -> digests.json next to the test reports.
publish: push the SAME local images to the release registry and refuse if a digest differs from the
tested one (a different digest would be different bytes: untested); then store beside each digest its SBOM,
CI's signature and the signed SLSA provenance (ci/attest.py, key from the SPIRA_SIGNING_KEY secret), which
`verify-promotion` and the clusters' admission policy require.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ci.build import REPO_ROOT, BuildOptions, BuiltImage, build, push

app = typer.Typer(add_completion=False, no_args_is_help=True)


def _podman():
    from ci.cli import _podman as make

    return make()


@app.command("build-and-test")
def build_and_test(
    model_version: Annotated[str, typer.Option()],
    base_image: Annotated[str | None, typer.Option()] = None,
    torch_flavour: Annotated[str, typer.Option()] = "cpu",
    bento_dir: Annotated[Path | None, typer.Option()] = None,
    contract_tests: Annotated[Path, typer.Option()] = Path("tests/contract"),
    out: Annotated[Path, typer.Option()] = Path("build/ephemeral"),
) -> None:
    from ci.ephemeral import EphemeralOptions, run_ephemeral
    from ci.ephemeral_intake import run_intake_ephemeral
    from ci.ephemeral_training import run_training_checks
    from ci.registry import loopback_registry

    podman = _podman()
    say = lambda m: typer.echo(m, err=True)  # noqa: E731
    with loopback_registry() as registry:
        refs: dict[str, dict[str, str]] = {}
        for image in ("loadtest", "intake", "training", "model"):
            opts = BuildOptions(image, registry, base_image, torch_flavour, None, bento_dir, model_version)
            built = build(podman, opts, REPO_ROOT, say=say)
            pushed = push(podman, built, registry)
            refs[image] = {"local": built.local_ref, "tested": pushed.ref, "digest": pushed.digest}
            say(f"{image}: {pushed.ref} (built in {built.build_s:.0f}s)")
        report = run_ephemeral(
            podman,
            EphemeralOptions(
                refs["model"]["tested"], model_version, refs["loadtest"]["tested"], contract_tests, out
            ),
            say=say,
        )
        intake = run_intake_ephemeral(podman, refs["intake"]["tested"], out)
        say(f"intake: {'PASS' if intake.passed else 'FAIL'} {intake.checks} {intake.error or ''}")
        training = run_training_checks(podman, refs["training"]["tested"], out)
        say(f"training: {'PASS' if training.passed else 'FAIL'} {training.checks} {training.error or ''}")
    (out / "digests.json").write_text(
        json.dumps({"model_version": model_version, "images": refs}, indent=2) + "\n"
    )
    passed = report.passed and intake.passed and training.passed
    typer.echo(
        ("PASS" if passed else "FAIL")
        + f" in {report.total_s}s"
        + (f": {report.error}" if report.error else "")
        + (f"; intake: {intake.error or intake.checks}" if not intake.passed else "")
        + (f"; training: {training.error or training.checks}" if not training.passed else "")
    )
    if not passed:
        raise typer.Exit(1)


@app.command("publish")
def publish(
    registry: Annotated[str, typer.Option(help="release registry host")],
    from_dir: Annotated[Path, typer.Option("--from")] = Path("build/ephemeral"),
) -> None:
    """Push the tested local images; print `<image>_digest=sha256:...` lines (GitHub step outputs)."""
    record = json.loads((from_dir / "digests.json").read_text())
    report = json.loads((from_dir / "report.json").read_text())

    def passed(image: str) -> bool:
        path = from_dir / f"{image}-report.json"
        return path.exists() and bool(json.loads(path.read_text()).get("passed"))

    untested = [image for image in ("intake", "training") if image in record["images"] and not passed(image)]
    if not report.get("passed") or untested:
        typer.echo("refusing to publish: an ephemeral test did not pass", err=True)
        raise typer.Exit(1)
    from ci.attest import sign_tested, signing_key

    key = signing_key(None)  # CI's secret; refuse to publish what cannot be signed
    report_bytes = (from_dir / "report.json").read_bytes()
    podman = _podman()
    for image, refs in record["images"].items():
        pushed = push(podman, BuiltImage(image, refs["local"], "", {}, 0.0), registry, tls_verify=True)
        if pushed.digest != refs["digest"]:
            typer.echo(f"refusing: {image} pushed as {pushed.digest}, tested as {refs['digest']}", err=True)
            raise typer.Exit(1)
        params = {"modelVersion": str(record["model_version"])} if image == "model" else {}
        signed = sign_tested(
            podman, registry, image, refs["local"], pushed.digest, key, report_bytes, True, "", params
        )
        typer.echo(f"signed {signed.repository}@{signed.digest}", err=True)
        typer.echo(f"{image}_digest={pushed.digest}")


if __name__ == "__main__":
    app()
