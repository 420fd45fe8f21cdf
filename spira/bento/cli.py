"""`spira serve`, `spira predict` and `spira bento import|build` (contract names other checks use).

Operator side: it imports serving (what the pod runs) and the local stack; serving never imports this."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=True)
REPO_ROOT = Path(__file__).resolve().parents[2]
BENTO_EXPORT_DIR = REPO_ROOT / "build" / "bento"

bento_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Import the model and build the Bento."
)


def _tracking_uri(explicit: str | None) -> str:
    if explicit:
        return explicit
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    from spira.stack import StackConfig
    from spira.stack.mlflow_server import MlflowService

    mlflow = MlflowService(StackConfig.load())  # the local stack's MLflow, as its operator (its admin)
    if mlflow.admin_file.is_file() and not os.environ.get("MLFLOW_TRACKING_USERNAME"):
        user, password = mlflow.admin()
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = user, password
    return mlflow.uri


def _bentoml() -> str:
    candidate = Path(sys.executable).parent / "bentoml"
    return str(candidate) if candidate.exists() else "bentoml"


@bento_app.command("import")
def import_cmd(
    model: str = typer.Option(..., "--model", help="MLflow version number or alias (candidate, champion)."),
    tracking_uri: str | None = typer.Option(
        None, help="MLflow URI (default $MLFLOW_TRACKING_URI or the local stack)."
    ),
    pin: bool = typer.Option(True, help="Write serving/model.lock.json (the version pinned in git)."),
    pin_file: Path | None = typer.Option(
        None, help="Write the pin here instead (a local server's SPIRA_MODEL_PIN)."
    ),
) -> None:
    """Resolve the model once, import it into the BentoML store, pin the version."""
    from spira.bento.model_import import MlflowModelSource, import_model

    result = import_model(MlflowModelSource(_tracking_uri(tracking_uri)), model)
    if pin_file is not None:
        result.write(pin_file)
    elif pin:
        result.write()
    print(
        json.dumps(
            {
                "bento_model": result.bento_tag,
                "bundle_sha256": result.bundle_sha256,
                "mlflow_version": result.mlflow_version,
                "resolved_from": result.resolved_from,
            }
        )
    )


@bento_app.command("fetch")
def fetch_cmd(
    pin_file: Path | None = typer.Option(
        None, "--pin", help="The pin to fetch (default: the effective pin)."
    ),
    settings: Path | None = typer.Option(
        None,
        help="JSON with s3_endpoint, s3_access_key, s3_secret_key, features_bucket (default: the training "
        "secret in Vault); a read-only key is enough.",
    ),
) -> None:
    """Fetch the pinned bundle from the training object store (no MLflow needed), check its sha256 against
    the pin, and import it into the BentoML store: how CI obtains the model it builds."""
    from serving.pin import ModelPin, PinMismatch
    from spira.bento.model_import import fetch_pinned
    from training.adapters.s3 import S3ArtifactStore
    from training.wiring import load_settings

    pin = ModelPin.read(pin_file)
    s = load_settings(settings)
    store = S3ArtifactStore(s["s3_endpoint"], s["s3_access_key"], s["s3_secret_key"], s["features_bucket"])
    try:
        fetch_pinned(pin, store)
    except (PinMismatch, FileNotFoundError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    print(json.dumps({"bento_model": pin.bento_tag, "bundle_sha256": pin.bundle_sha256}))


@bento_app.command("build")
def build_cmd(
    export_dir: Path = typer.Option(BENTO_EXPORT_DIR, help="Where the built Bento's directory is copied."),
) -> None:
    """`bentoml build` of the pinned model and service; prints the Bento tag and copies it to export-dir."""
    tag = build_bento()
    path = export_bento(tag, export_dir)
    print(json.dumps({"bento": tag, "path": str(path)}))


def build_context(dest: Path) -> Path:
    """Assemble exactly what the Bento packs: the service, spira_core and the effective model pin (the one
    in git, or SPIRA_MODEL_PIN's when a test or `--model` overrides it). Refuses when the model in the
    BentoML store is not, byte for byte, the bundle the pin names."""
    from serving.pin import ModelPin
    from spira.bento.model_import import stored_bundle_dir

    pin = ModelPin.read()
    stored_bundle_dir(pin)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "model.lock.json", "Containerfile")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(REPO_ROOT / "serving", dest / "serving", ignore=ignore)
    shutil.copytree(REPO_ROOT / "spira_core", dest / "spira_core", ignore=ignore)
    pin.write(dest / "serving" / "model.lock.json")
    return dest


def build_bento() -> str:
    from serving.pin import PinMismatch

    with tempfile.TemporaryDirectory(prefix="spira-bento-") as tmp:
        try:
            ctx = build_context(Path(tmp) / "ctx")
        except (PinMismatch, FileNotFoundError) as exc:
            console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from exc
        out = subprocess.run(
            [_bentoml(), "build", "-f", "serving/bentofile.yaml", "--output", "tag", "."],
            cwd=ctx,
            capture_output=True,
            text=True,
        )
    if out.returncode != 0:
        console.print(out.stdout + out.stderr)
        raise typer.Exit(1)
    tag = out.stdout.strip().splitlines()[-1].replace("__tag__:", "").strip()
    return tag


def export_bento(tag: str, export_dir: Path) -> Path:
    """The Bento with its models, unpacked: what the image copies to /opt/bento and serves."""
    import tarfile

    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "spira.bento"
        out = subprocess.run([_bentoml(), "export", tag, str(archive)], capture_output=True, text=True)
        if out.returncode != 0:
            console.print(out.stdout + out.stderr)
            raise typer.Exit(1)
        if export_dir.exists():
            shutil.rmtree(export_dir)
        export_dir.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(export_dir, filter="data")
    return export_dir


def serve(
    port: int = typer.Option(3000, help="Port on 127.0.0.1."),
    bento: str | None = typer.Option(None, help="Serve a built Bento by tag."),
    model: str | None = typer.Option(None, help="Serve this MLflow version/alias instead of the pinned one."),
    host: str = typer.Option("127.0.0.1"),
    tracking_uri: str | None = typer.Option(None),
) -> None:
    """Serve over HTTP with BentoML (the pinned model by default). From an operator's shell it serves as
    the local stack's serving workload (spira.workload); without Vault settings, without the archive."""
    from serving.archive import LOCAL_SPOOL_ENV
    from spira.stack import StackConfig

    env = dict(os.environ)
    # a pod spools on its volume at serving's SPOOL_DIR; a developer's server spools under the stack's home
    env.setdefault(LOCAL_SPOOL_ENV, str(StackConfig.load().home / "spool" / f"serve-{port}"))
    if not env.get("VAULT_ADDR"):
        console.print(
            "[yellow]no Vault (VAULT_ADDR unset, no local stack): serving without the archive[/yellow]"
        )
    if bento and model:
        raise typer.BadParameter("use --bento or --model, not both")
    target = bento or "serving.service:Spira"
    if model:
        from spira.bento.model_import import MlflowModelSource, import_model

        pin = import_model(MlflowModelSource(_tracking_uri(tracking_uri)), model)
        pin_file = Path(tempfile.mkdtemp(prefix="spira-pin-")) / "model.lock.json"
        pin.write(pin_file)
        env["SPIRA_MODEL_PIN"] = str(pin_file)
    os.chdir(REPO_ROOT)
    if env.get("VAULT_ADDR"):
        # a consumer of the stack's serving secret that `spira secrets rotate` waits for: exec keeps the pid,
        # and the registration is dropped once that process is gone
        from spira.stack.consumers import Registration, register

        name = f"spira-serve-{port}"
        register(
            StackConfig.load().home,
            Registration("serving", name, os.getpid(), _bentoml(), f"http://{host}:{port}/metrics"),
        )
    argv = [_bentoml(), "serve", target, "--port", str(port), "--host", host]
    if not env.get("VAULT_ADDR"):
        os.execvpe(argv[0], argv, env)
    raise typer.Exit(_serve_with_uploader(argv, env))


def _serve_with_uploader(argv: list[str], env: dict[str, str]) -> int:
    """The server and, beside it, the archive's uploader (`python -m serving.uploader`, as the pod's
    sidecar): the uploader starts first and stops last, with SIGTERM, so it drains what was spooled."""
    import signal

    uploader = subprocess.Popen([sys.executable, "-m", "serving.uploader"], env=env, cwd=REPO_ROOT)
    server = subprocess.Popen(argv, env=env)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: server.send_signal(signum))
    code = server.wait()
    uploader.send_signal(signal.SIGTERM)
    try:
        uploader.wait(60)
    except subprocess.TimeoutExpired:
        uploader.kill()
        uploader.wait()
    return code


def predict(
    files: list[Path] = typer.Argument(..., help="Audio files (WAV, FLAC, OGG)."),
    model: str = typer.Option(..., "--model", help="MLflow version number or alias."),
    tracking_uri: str | None = typer.Option(None),
) -> None:
    """Predict offline through the same code as the server: one JSON line per file."""
    from serving.inference import Predictor
    from serving.limits import Rejected
    from spira.bento.model_import import MlflowModelSource
    from spira_core.model import load_bundle

    source = MlflowModelSource(_tracking_uri(tracking_uri))
    resolved = source.resolve(model)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        predictor = Predictor.from_bundle(load_bundle(source.download(resolved, Path(tmp))), resolved.version)
    for f in files:
        try:
            answer = {"file": str(f), **predictor.predict_bytes(f.read_bytes())}
        except Rejected as exc:
            answer, failures = {"file": str(f), "error": exc.code, "detail": exc.detail}, failures + 1
        except OSError as exc:
            answer, failures = {"file": str(f), "error": "unreadable", "detail": str(exc)}, failures + 1
        print(json.dumps(answer), flush=True)
    if failures:
        raise typer.Exit(1)
