"""Build an image once from a staged context, push it, and name it by the digest the registry computed.

The build context is staged (hardlinks) under build/images/<image>/context with exactly what the image
gets: its Containerfile, its sources and its wheelhouse. So nothing else of the checkout (a venv, local
state) can reach the build, and the layer cache keys on that content only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ci.base_image import ensure_base
from ci.podman import Podman
from ci.wheelhouse import WheelhouseSpec, ensure_wheelhouse, pyproject_requirements, requirements_file

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = Path("build/images")
DIGEST_PREFIX = "sha256:"
BASE_LABEL = "dev.spira.base-image"


@dataclass(frozen=True)
class ImageSpec:
    name: str  # repository name under spira/ in the registry, and the kustomize image name suffix
    containerfile: str  # repo-relative
    # repo-relative source -> path in the build context
    context: dict[str, str]
    requirements: Callable[[Path], list[str]]
    wheelhouse_in_context: str = "wheels"
    uses_torch: bool = False
    build_args: dict[str, str] = field(default_factory=dict)
    # the torch build this image always carries (None: the build's --torch-flavour)
    torch_flavour: str | None = None


def _model_requirements(root: Path) -> list[str]:
    return pyproject_requirements(root / "pyproject.toml", ["serving"])


def _training_requirements(root: Path) -> list[str]:
    return pyproject_requirements(root / "pyproject.toml", ["cli", "training"])


# What a training step runs, and nothing else of the operator side: the stage code and the three modules
# of the `spira` command that `spira pipeline <stage>` goes through (its other commands are unavailable).
TRAINING_CONTEXT = {
    "spira_core": "src/spira_core",
    "training": "src/training",
    "spira/__init__.py": "src/spira/__init__.py",
    "spira/cli.py": "src/spira/cli.py",
    "spira/workload.py": "src/spira/workload.py",
    # the workflow's `candidate` step (`spira workflow candidate`): the CLI group without the render's infra
    "spira/workflow/__init__.py": "src/spira/workflow/__init__.py",
    "spira/workflow/cli.py": "src/spira/workflow/cli.py",
    "spira/workflow/play_cli.py": "src/spira/workflow/play_cli.py",
    "spira/workflow/candidate.py": "src/spira/workflow/candidate.py",
}


# What `spira gate clinical` runs in the gate image (python -m spira.clinical.gate): no typer, rich, MLflow.
CLINICAL_GATE_MODULES = (
    "__init__.py",
    "clinical/__init__.py",
    "clinical/gate.py",
    "clinical/report.py",
    "clinical/holdout_access.py",
)


def _loadtest_requirements(root: Path) -> list[str]:
    return requirements_file(root / "loadtests/requirements.in")


IMAGES: dict[str, ImageSpec] = {
    "model": ImageSpec(
        name="model",
        containerfile="serving/Containerfile",
        context={"build/bento": "bento"},
        requirements=_model_requirements,
        uses_torch=True,
    ),
    "loadtest": ImageSpec(
        name="loadtest",
        containerfile="loadtests/Containerfile",
        # the gate's credential for /predict: the one application module the image carries (stdlib only)
        context={
            "loadtests": "loadtests",
            "spira_core/predict_credential.py": "spira_core/predict_credential.py",
            # the clinical gate's runner (not the project CLI's modules) and its pure judging code
            "spira_core/clinical": "spira_core/clinical",
            **{f"spira/{m}": f"spira/{m}" for m in CLINICAL_GATE_MODULES},
        },
        requirements=_loadtest_requirements,
        build_args={"WHEELHOUSE": "wheels"},
    ),
    # the burst path's upload API (docs/queue.md): the intake and spira_core, no torch
    "intake": ImageSpec(
        name="intake",
        containerfile="intake/Containerfile",
        context={"intake": "src/intake", "spira_core": "src/spira_core"},
        requirements=lambda root: requirements_file(root / "intake/requirements.in"),
    ),
    "training": ImageSpec(
        name="training",
        containerfile="training/Containerfile",
        context=TRAINING_CONTEXT,
        requirements=_training_requirements,
        uses_torch=True,
        torch_flavour="cpu",
    ),
    # the GPU pool's train step: the same code with the CUDA torch build (written and checked; no GPU here)
    "training-gpu": ImageSpec(
        name="training-gpu",
        containerfile="training/Containerfile.gpu",
        context=TRAINING_CONTEXT,
        requirements=_training_requirements,
        uses_torch=True,
        torch_flavour="cuda",
    ),
}


@dataclass(frozen=True)
class BuildOptions:
    image: str
    registry: str  # host:port
    base_image: str | None = None  # None: the local debootstrap base
    torch_flavour: str = "cpu"
    torch_index_url: str | None = None
    bento_dir: Path | None = None  # model image only; default build/bento
    model_version: str | None = None  # default: from the Bento
    git_sha: str | None = None
    source: str | None = None
    tls_verify: bool = False  # the loopback registry speaks plain HTTP


@dataclass(frozen=True)
class BuiltImage:
    image: str
    local_ref: str
    image_id: str
    labels: dict[str, str]
    build_s: float


@dataclass(frozen=True)
class PushedImage:
    repository: str  # host:port/spira/<image>
    digest: str  # sha256:...

    @property
    def ref(self) -> str:
        return f"{self.repository}@{self.digest}"


def git_sha(root: Path = REPO_ROOT) -> str:
    out = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def git_source(root: Path = REPO_ROOT) -> str:
    if os.environ.get("GITHUB_SERVER_URL") and os.environ.get("GITHUB_REPOSITORY"):
        return f"{os.environ['GITHUB_SERVER_URL']}/{os.environ['GITHUB_REPOSITORY']}"
    out = subprocess.run(
        ["git", "-C", str(root), "config", "--get", "remote.origin.url"], capture_output=True, text=True
    )
    return out.stdout.strip() or f"file://{root}"


def bento_model_version(bento_dir: Path) -> str:
    """The version the service answers with (`model_version`): the Bento's label if it has one, else the
    first model's metadata `model_version` (what serving reads), else that model's tag version."""
    meta = yaml.safe_load((bento_dir / "bento.yaml").read_text()) or {}
    labels = meta.get("labels") or {}
    if labels.get("model_version"):
        return str(labels["model_version"])
    # BentoML 1.4 lists a service's models under services[].models (top-level `models` stays empty for
    # models declared on the service class); older Bentos list them at the top
    models = meta.get("models") or [m for svc in meta.get("services") or [] for m in svc.get("models") or []]
    if not models:
        raise ValueError(f"{bento_dir / 'bento.yaml'} names no model (label model_version or models[].tag)")
    tag = models[0]["tag"] if isinstance(models[0], dict) else str(models[0])
    name, _, version = tag.partition(":")
    model_yaml = bento_dir / "models" / name / version / "model.yaml"
    if model_yaml.exists():
        model = yaml.safe_load(model_yaml.read_text()) or {}
        for source in (model.get("metadata") or {}, model.get("labels") or {}):
            for key in ("model_version", "mlflow_version"):
                if source.get(key) not in (None, ""):
                    return str(source[key])
    return version


def verify_bento(bento_dir: Path) -> None:
    """Refuse a Bento whose model is not, byte for byte, the bundle its own pin names (the pin the Bento
    was built with, src/serving/model.lock.json), and whose stored model hash disagrees with it."""
    from serving.pin import ModelPin, verified_bundle_dir

    pin = ModelPin.read(bento_dir / "src" / "serving" / "model.lock.json")
    name, _, version = pin.bento_tag.partition(":")
    model_dir = bento_dir / "models" / name / version
    if not model_dir.is_dir():
        raise FileNotFoundError(f"the Bento at {bento_dir} does not hold the pinned model {pin.bento_tag}")
    pin.verify(verified_bundle_dir(model_dir), what="the Bento's model")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem
        shutil.copy2(src, dst)


def stage_context(spec: ImageSpec, root: Path, wheelhouse: Path, sources: dict[str, Path]) -> Path:
    ctx = (root / BUILD_ROOT / spec.name / "context").resolve()
    if ctx.exists():
        shutil.rmtree(ctx)
    ctx.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for rel_dst, src in {spec.wheelhouse_in_context: wheelhouse, **sources}.items():
        dst = ctx / rel_dst
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=ignore, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(src), str(dst))
    shutil.copy2(root / spec.containerfile, ctx / "Containerfile")
    return ctx


def build(podman: Podman, opts: BuildOptions, root: Path = REPO_ROOT, say=print) -> BuiltImage:
    spec = IMAGES[opts.image]
    start = time.monotonic()
    base = opts.base_image or ensure_base(podman, say=say)
    lock = (root / "requirements.lock").read_text()
    flavour = spec.torch_flavour or opts.torch_flavour
    wh_spec = WheelhouseSpec(
        spec.name, tuple(spec.requirements(root)), lock, flavour if spec.uses_torch else "cpu"
    )
    wheelhouse = ensure_wheelhouse(wh_spec, root / ".spira/wheels", opts.torch_index_url, say=say)

    sources = {dst: root / src for src, dst in spec.context.items()}
    labels: dict[str, str] = {}
    sha = opts.git_sha or git_sha(root)
    args = {**spec.build_args, "BASE_IMAGE": base}
    if spec.name == "model":
        bento = (opts.bento_dir or root / "build/bento").resolve()
        if not (bento / "bento.yaml").exists():
            raise FileNotFoundError(f"no Bento at {bento} (run `spira bento build` first)")
        verify_bento(bento)
        sources["bento"] = bento
        version = opts.model_version or bento_model_version(bento)
        args |= {
            "TORCH_FLAVOUR": opts.torch_flavour,
            "GIT_SHA": sha,
            "MODEL_VERSION": version,
            "SOURCE": opts.source or git_source(root),
        }
    elif spec.name.startswith("training"):
        args |= {"TORCH_FLAVOUR": flavour, "GIT_SHA": sha, "SOURCE": opts.source or git_source(root)}
    else:
        # The loadtest Containerfile is the gate's; the provenance labels are added at build time.
        labels = {
            "org.opencontainers.image.revision": sha,
            "org.opencontainers.image.source": opts.source or git_source(root),
        }
    ctx = stage_context(spec, root, wheelhouse, sources)

    local_ref = f"localhost/spira/{spec.name}:{sha[:12]}"
    cmd = [
        "build",
        "--format",
        "docker",
        "--layers",
        "--network",
        "none",
        "-f",
        str(ctx / "Containerfile"),
        "-t",
        local_ref,
    ]
    for key, value in sorted(args.items()):
        cmd += ["--build-arg", f"{key}={value}"]
    # the base the image was built FROM, for its provenance (ci/attest.py)
    for key, value in sorted({**labels, BASE_LABEL: base}.items()):
        cmd += ["--label", f"{key}={value}"]
    say(f"building {local_ref} from {spec.containerfile}")
    podman(*cmd, str(ctx), timeout=3600)
    image_id = podman.text("image", "inspect", "--format", "{{.Id}}", local_ref)
    inspected = podman.text("image", "inspect", "--format", "{{json .Labels}}", local_ref)
    return BuiltImage(
        spec.name, local_ref, image_id, yaml.safe_load(inspected) or {}, time.monotonic() - start
    )


def push(podman: Podman, built: BuiltImage, registry: str, tls_verify: bool = False) -> PushedImage:
    """Push and take the digest from the registry's answer (--digestfile): the name deploys resolve."""
    repository = f"{registry}/spira/{built.image}"
    tag = built.local_ref.rsplit(":", 1)[1]
    with tempfile.TemporaryDirectory(prefix="spira-push-") as tmp:
        digestfile = Path(tmp) / "digest"
        podman(
            "push",
            f"--tls-verify={str(tls_verify).lower()}",
            "--digestfile",
            str(digestfile),
            built.local_ref,
            f"docker://{repository}:{tag}",
            timeout=1800,
        )
        digest = digestfile.read_text().strip()
    if not digest.startswith(DIGEST_PREFIX) or len(digest) != len(DIGEST_PREFIX) + 64:
        raise RuntimeError(f"the registry returned no usable digest for {repository}: {digest!r}")
    return PushedImage(repository, digest)
