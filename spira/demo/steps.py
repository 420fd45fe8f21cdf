"""The demo's steps as plain functions over a DemoContext; each shells out to the same commands a user or
a CI job would run, so the demo shows the real interfaces rather than private shortcuts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ci.set_image import KUSTOMIZATION
from spira.demo import reuse
from spira.faults import Degradation, FaultProxy
from spira.local_server import LocalServer, LocalServerError, import_pinned, server_env, start_local_server
from spira.stack import LocalStack, StackConfig, StackInfo

REPO = Path(__file__).resolve().parents[2]
SPIRA = [sys.executable, "-m", "spira.cli"]
MODEL_NAME = "spira-respiratory"


class StepFailed(RuntimeError):
    pass


@dataclass
class DemoContext:
    home: Path  # $SPIRA_HOME/demo
    console: Console
    synth_n: int = 160
    synth_seed: int = 11
    data_csv: Path | None = None
    noise_csv: Path | None = None
    preset: str = "fast"
    epochs: int | None = None
    images: bool = True
    degrade: str | None = None  # a Degradation spec, injected by a fault proxy in front of the preview
    # `--degrade accuracy`: train the candidate with this fraction of its labels flipped (a real, worse model)
    label_noise: float | None = None
    holdout_csv: Path | None = None  # the frozen holdout the clinical gate judges on (spira/demo/clinical.py)
    active_url: str = ""  # the champion as served, when it is not the candidate: the clinical baseline
    gate_duration_s: int = 20
    stack: StackInfo | None = None
    facts: dict[str, object] = field(default_factory=dict)
    servers: list[LocalServer] = field(default_factory=list)
    pods: list[str] = field(default_factory=list)  # preview pods played with podman
    proxies: list[FaultProxy] = field(default_factory=list)
    candidate_url: str = ""  # what the gate judges: the preview, or the fault proxy in front of it
    build_key: str = ""  # what the images are built from (spira/demo/reuse.py)
    reused: dict | None = None  # the last tested build, when build_key matches it

    @property
    def images_record(self) -> Path:
        return self.home / "images.json"

    @property
    def bentoml_home(self) -> Path:
        return self.home / "bentoml"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "SPIRA_HOME": str(self.stack.home if self.stack else ""),
            "BENTOML_HOME": str(self.bentoml_home),
            **extra,
        }

    def run(
        self,
        cmd: list[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        capture: bool = False,
        timeout: int = 3600,
    ) -> subprocess.CompletedProcess:
        """Run a command; its own progress output goes to the terminal unless captured."""
        args = cmd[len(SPIRA) :] if cmd[: len(SPIRA)] == SPIRA else cmd
        shown = " ".join(c if "/" not in c or len(c) < 60 else "…/" + Path(c).name for c in args if c)
        self.console.print(
            f"[dim]$ spira {shown}[/dim]" if cmd[:3] == SPIRA else f"[dim]$ {' '.join(cmd)}[/dim]"
        )
        out = subprocess.run(
            cmd, env=env or self.env(), cwd=cwd or REPO, text=True, timeout=timeout, capture_output=capture
        )
        if out.returncode != 0:
            detail = (out.stdout or "")[-2000:] + (out.stderr or "")[-2000:] if capture else ""
            raise StepFailed(f"`{shown}` exited {out.returncode}\n{detail}".rstrip())
        return out


def podman_available() -> bool:
    return shutil.which("podman") is not None and shutil.which("docker-registry") is not None


# -- 1. stack ----------------------------------------------------------------------------------------
def start_stack(ctx: DemoContext) -> None:
    stack = LocalStack(StackConfig.load())
    ctx.stack = stack.up(say=lambda m: ctx.console.print(f"  {m}"))
    os.environ.update(ctx.stack.mlflow_operator_env())  # the demo's own MLflow calls act as the operator
    ctx.home.mkdir(parents=True, exist_ok=True)
    ctx.facts["mlflow_ui"] = ctx.stack.mlflow_uri


# -- 2. data -------------------------------------------------------------------------------------------
def prepare_data(ctx: DemoContext) -> None:
    if ctx.data_csv is None:
        out = ctx.home / f"data-n{ctx.synth_n}-s{ctx.synth_seed}"
        if not (out / "dataset.csv").exists():  # deterministic for a seed: generate once
            ctx.run(
                [
                    *SPIRA,
                    "data",
                    "synth",
                    "--out",
                    str(out),
                    "--n",
                    str(ctx.synth_n),
                    "--seed",
                    str(ctx.synth_seed),
                ]
            )
        ctx.data_csv, ctx.noise_csv = out / "dataset.csv", out / "noise.csv"
        ctx.facts["dataset"] = f"synthetic, {ctx.synth_n} recordings, seed {ctx.synth_seed}"
    else:
        ctx.facts["dataset"] = str(ctx.data_csv)
    upload_dataset(ctx)


def upload_dataset(ctx: DemoContext) -> None:
    """Put the raw recordings into the feature store's bucket, as a cluster's training Job would find them."""
    from spira_core.settings import service_secret
    from training.data import dataset_fingerprint, load_dataset_csv

    examples = load_dataset_csv(ctx.data_csv)
    fingerprint = dataset_fingerprint(examples)
    secret = service_secret("training", ctx.stack.service_env("training"))
    s3 = ctx.stack.s3_client(secret["s3_access_key"], secret["s3_secret_key"])
    prefix = f"datasets/{fingerprint[:16]}/"
    have = {
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=secret["features_bucket"], Prefix=prefix
        )
        for o in page.get("Contents", [])
    }
    for ex in [*examples, None]:
        path = ctx.data_csv if ex is None else ex.path
        key = prefix + ("dataset.csv" if ex is None else path.name)
        if key not in have:
            s3.upload_file(str(path), secret["features_bucket"], key)
    ctx.facts["dataset_s3"] = f"s3://{secret['features_bucket']}/{prefix}"


# -- 3. pipeline ---------------------------------------------------------------------------------------
def run_pipeline(ctx: DemoContext) -> None:
    outcome_file = ctx.home / "pipeline-outcome.json"
    overrides = ["--epochs", str(ctx.epochs)] if ctx.epochs else []
    if ctx.label_noise:
        overrides += ["--label-noise", str(ctx.label_noise)]
    ctx.run(
        [
            *SPIRA,
            "pipeline",
            "run",
            "--data",
            str(ctx.data_csv),
            "--noise",
            str(ctx.noise_csv),
            "--preset",
            ctx.preset,
            *overrides,
            "--json-out",
            str(outcome_file),
        ],
        env=ctx.env(**ctx.stack.service_env("training")),
    )
    outcome = json.loads(outcome_file.read_text())
    publish = outcome["publish"]
    ctx.facts["model_version"] = str(publish["version"])
    ctx.facts["metrics"] = outcome["metrics"]
    ctx.facts["publish"] = publish
    ctx.facts["stages_reused"] = [s["stage"] for s in outcome["stages"] if s["skipped"]]


# -- 4. bento and images -------------------------------------------------------------------------------
def build_bento(ctx: DemoContext) -> None:
    version = str(ctx.facts["model_version"])
    pin_file = ctx.home / "model.lock.json"
    ctx.console.print(f"[dim]$ spira bento import --model {version} --pin-file {pin_file}[/dim]")
    import_pinned(ctx.stack.mlflow_uri, version, pin_file, ctx.bentoml_home)
    if ctx.images and podman_available():
        images = pinned_images((REPO / KUSTOMIZATION).read_text())
        ctx.build_key = reuse.source_key(REPO, version, images)
        ctx.reused = reuse.reusable(ctx.images_record, ctx.build_key, images)
    if ctx.reused:
        ctx.facts["bento"] = f"{ctx.reused['bento']} (reused: same model and sources)"
        return
    out = ctx.run(
        [*SPIRA, "bento", "build", "--export-dir", str(ctx.home / "bento")],
        env=ctx.env(SPIRA_MODEL_PIN=str(pin_file)),
        capture=True,
    )
    ctx.facts["bento"] = json.loads(out.stdout.strip().splitlines()[-1])["bento"]


# Each image the GitOps base pins is built, pushed and tested by digest as CI's build-and-test does it
# (ci/workflow.py), in its order; the model's test runs the gate image by digest too, so it covers both.
BUILD_ORDER = ("loadtest", "intake", "training", "model")
# the ephemeral test each image passes before it is signed: image -> the report.json its signature carries
TEST_REPORTS = {
    "model": "report.json",
    "loadtest": "report.json",
    "intake": "intake-report.json",
    "training": "training-report.json",
}


def pinned_images(kustomization_text: str) -> list[str]:
    """The images (ci names) argocd/base/kustomization.yaml pins, in BUILD_ORDER: the demo builds, tests,
    signs and records exactly these, so verify-promotion finds a tested, signed digest for each."""
    from ci.set_image import KUSTOMIZE_NAMES, image_entries

    by_kname = {kname: image for image, kname in KUSTOMIZE_NAMES.items()}
    pinned = list(image_entries(kustomization_text))
    unknown = [k for k in pinned if k not in by_kname]
    if unknown:
        raise StepFailed(
            f"argocd/base/kustomization.yaml pins {', '.join(unknown)}, which ci.set_image.KUSTOMIZE_NAMES "
            "does not know: set-image and verify-promotion could not handle it"
        )
    images = [by_kname[k] for k in pinned]
    tested_by = {"model", "loadtest", *OWN_TESTS}  # `spira image test` runs the model with the gate image
    untested = [i for i in images if i not in BUILD_ORDER or i not in TEST_REPORTS or i not in tested_by]
    if untested:
        raise StepFailed(
            f"the demo has no build and ephemeral test for {', '.join(untested)} (spira/demo/steps.py "
            "BUILD_ORDER, TEST_REPORTS, OWN_TESTS): it could not promote what the kustomization pins"
        )
    return sorted(images, key=BUILD_ORDER.index)


def set_image_args(images: list[str], refs: dict[str, str]) -> list[str]:
    """`--<image> REF` for every pinned image (set-image's options are the ci names)."""
    missing = [i for i in images if not refs.get(i)]
    if missing:
        raise StepFailed(f"no tested digest of {', '.join(missing)} to record on staging")
    return [arg for image in images for arg in (f"--{image}", refs[image])]


def _podman():
    from ci.podman import Podman, PodmanConfig

    return Podman(PodmanConfig.at())


def _intake_test(ctx: DemoContext, ref: str, out: Path) -> str:
    from ci.ephemeral_intake import run_intake_ephemeral

    ctx.console.print("[dim]ephemeral test of intake by digest (ci/ephemeral_intake.py)[/dim]")
    report = run_intake_ephemeral(_podman(), ref, out)
    if not report.passed:
        raise StepFailed(f"intake failed its ephemeral test: {report.error or report.checks} (logs in {out})")
    return f"ready in {report.ready_s} s; " + ", ".join(f"{k} {v}" for k, v in report.checks.items())


def _training_test(ctx: DemoContext, ref: str, out: Path) -> str:
    from ci.ephemeral_training import run_training_checks

    ctx.console.print("[dim]ephemeral test of training by digest (ci/ephemeral_training.py)[/dim]")
    report = run_training_checks(_podman(), ref, out)
    if not report.passed:
        raise StepFailed(
            f"training failed its ephemeral test: {report.error or report.checks} (logs in {out})"
        )
    return f"{len(report.checks)} WorkflowTemplate steps accept their command, {report.total_s} s"


# The images tested on their own, by the functions CI's build-and-test calls (the model's test, `spira
# image test`, covers the model and the gate image); each returns what it checked or raises StepFailed.
OWN_TESTS = {"intake": _intake_test, "training": _training_test}


def build_images(ctx: DemoContext) -> None:
    if not ctx.images:
        ctx.facts["image"] = "skipped (--no-images)"
        return
    if not podman_available():
        ctx.facts["image"] = "skipped (podman or docker-registry not installed)"
        ctx.images = False
        return
    images = pinned_images((REPO / KUSTOMIZATION).read_text())
    if ctx.reused:
        ctx.facts["images"] = {i: ctx.reused["images"][i] for i in images}
        ctx.facts["image"] = ctx.facts["images"]["model"]
        ctx.facts["ephemeral_test"] = "passed earlier for these digests (nothing they are built from changed)"
        ctx.console.print("  same model version and sources as the last tested build: its digests are reused")
        return
    env = ctx.env(SPIRA_REGISTRY=ctx.stack.registry or "")
    refs: dict[str, str] = {}
    build_s: dict[str, float] = {}
    local: dict[str, str] = {}
    for image in images:
        bento = ["--bento-dir", str(ctx.home / "bento")] if image == "model" else []
        started = time.monotonic()
        out = ctx.run([*SPIRA, "image", "build", image, *bento], env=env, capture=True)
        build_s[image] = time.monotonic() - started
        refs[image] = out.stdout.strip().splitlines()[-1]
        # the local image by the tag it was built with: a commit made meanwhile must not change what is signed
        local[image] = re.findall(r"^built (\S+) \(", out.stderr or "", re.M)[-1]
        ctx.console.print(f"  {image}: {escape(refs[image])} (built and pushed in {build_s[image]:.0f} s)")
    ctx.facts["images"], ctx.facts["image"] = refs, refs["model"]
    ctx.facts["image_builds"] = ", ".join(f"{i} {s:.0f} s" for i, s in build_s.items())
    out_dir = ctx.home / "ephemeral"
    loadtest = ["--loadtest-ref", refs["loadtest"]] if "loadtest" in refs else []
    ctx.run(
        [
            *SPIRA,
            "image",
            "test",
            refs["model"],
            "--model-version",
            str(ctx.facts["model_version"]),
            *loadtest,
            "--out",
            str(out_dir),
        ],
        env=env,
    )
    tested = ["model + gate: passed"]
    for image in (i for i in images if i in OWN_TESTS):
        tested.append(f"{image}: passed ({OWN_TESTS[image](ctx, refs[image], out_dir)})")
    ctx.facts["ephemeral_test"] = "; ".join(tested)
    # what CI does after the tests: SBOM, signature and signed provenance beside each digest (the stack's
    # key), each carrying the report of the test that digest passed
    for image, ref in refs.items():
        report = str(out_dir / TEST_REPORTS[image])
        ctx.run(
            [*SPIRA, "image", "sign", image, ref, "--report", report, "--local-ref", local[image]],
            env=env,
            capture=True,
        )
    reuse.save(ctx.images_record, ctx.build_key, bento=str(ctx.facts["bento"]), images=refs)


# -- 5. preview and active -----------------------------------------------------------------------------
def _serve(ctx: DemoContext, pin_file: Path, name: str, extra: dict[str, str]) -> str:
    """`bentoml serve` of a pinned model on this machine (when there is no image to play)."""
    settings = {
        **ctx.stack.service_env("serving"),
        "SPIRA_ARCHIVE_SPOOL": str(ctx.home / f"spool-{name}"),
        **extra,
    }
    env = server_env(ctx.bentoml_home, pin_file, **settings)
    ctx.console.print(
        f"[dim]$ bentoml serve serving.service:Spira  ({name}, model pin {pin_file.name})[/dim]"
    )
    try:
        server = start_local_server(env, ctx.home / "run", name=name)
    except LocalServerError as exc:
        raise StepFailed(f"{name}: {exc}") from exc
    ctx.servers.append(server)
    return server.url


def _play_preview(ctx: DemoContext) -> str:
    """The rendered Rollout pod, by digest, as Argo Rollouts would start the preview."""
    cmd = [
        *SPIRA,
        "image",
        "preview",
        str(ctx.facts["image"]),
        "--token-dir",
        str(ctx.home / "preview-token"),
    ]
    out = ctx.run(cmd, capture=True)
    preview = json.loads(out.stdout.strip().splitlines()[-1])
    ctx.pods.append(preview["pod"])
    for line in (out.stderr or "").splitlines():
        if "translated:" in line:
            ctx.console.print(f"  [dim]{escape(line.strip())}[/dim]")
    ctx.facts["preview_pod"] = f"{preview['pod']} (podman kube play, ready in {preview['ready_s']} s)"
    return preview["url"]


def front_with_faults(ctx: DemoContext, preview_url: str) -> str:
    """The URL the gate judges: the preview itself, or, with --degrade, a fault proxy started in front of
    it (the preview runs exactly what the image ships; the faults are the operator's)."""
    ctx.facts["preview"] = preview_url
    if not ctx.degrade:
        return preview_url
    degradation = Degradation.parse(ctx.degrade)
    proxy = FaultProxy(preview_url, degradation).start()
    ctx.proxies.append(proxy)
    ctx.console.print(f"[dim]fault proxy {proxy.url} → {preview_url} ({degradation})[/dim]")
    ctx.facts["preview"] = f"{preview_url} (as the image ships it; degraded through the fault proxy)"
    ctx.facts["fault_proxy"] = (
        f"{proxy.url}: the preview degraded through the fault proxy ({degradation}); the gate judges this URL"
    )
    return proxy.url


def start_preview(ctx: DemoContext) -> None:
    if ctx.images:
        preview_url = _play_preview(ctx)
    else:
        preview_url = _serve(ctx, ctx.home / "model.lock.json", "preview", {})
    ctx.candidate_url = front_with_faults(ctx, preview_url)
    champion = current_champion(ctx)
    if champion and champion != ctx.facts["model_version"]:
        pin = ctx.home / "champion.lock.json"
        import_pinned(ctx.stack.mlflow_uri, champion, pin, ctx.bentoml_home)
        ctx.active_url = _serve(ctx, pin, "active", {})
        ctx.facts["active"] = f"{ctx.active_url} (champion v{champion})"
    else:
        ctx.facts["active"] = "none yet (first promotion)" if not champion else f"v{champion} (same model)"


def current_champion(ctx: DemoContext) -> str | None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return str(
            MlflowClient(ctx.stack.mlflow_uri).get_model_version_by_alias(MODEL_NAME, "champion").version
        )
    except MlflowException:
        return None


def stop_servers(ctx: DemoContext) -> None:
    for proxy in ctx.proxies:
        proxy.stop()
    ctx.proxies.clear()
    for server in ctx.servers:
        server.stop()
    ctx.servers.clear()
    for pod in ctx.pods:
        subprocess.run([*SPIRA, "image", "preview-stop", pod], env=ctx.env(), cwd=REPO, capture_output=True)
    ctx.pods.clear()


# -- 6. gate -------------------------------------------------------------------------------------------
def run_gate(ctx: DemoContext) -> bool:
    out = ctx.home / "gate"
    cmd = [
        *SPIRA,
        "gate",
        "--url",
        ctx.candidate_url,
        "--thresholds",
        "local",
        "--expect-model-version",
        str(ctx.facts["model_version"]),
        "--duration",
        str(ctx.gate_duration_s),
        "--out",
        str(out),
    ]
    ctx.console.print(f"[dim]$ spira {' '.join(cmd[3:])}[/dim]")
    code = subprocess.run(cmd, env=ctx.env(), cwd=REPO).returncode
    ctx.facts["gate"] = {0: "PASS", 1: "FAIL", 2: "could not run"}.get(code, f"exit {code}")
    ctx.facts["locust_report"] = str(out / "report.html")
    return code == 0


# -- 7. promotion --------------------------------------------------------------------------------------
def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise StepFailed(f"git {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def gitops_clone(ctx: DemoContext) -> Path:
    """A bare 'origin' seeded from this checkout's HEAD with `main` and `staging`, and a working clone."""
    origin, clone = ctx.home / "gitops-origin.git", ctx.home / "gitops"
    if not origin.exists():
        git(ctx.home, "init", "--bare", "-b", "main", str(origin))
        head = git(REPO, "rev-parse", "HEAD").strip()
        git(REPO, "push", str(origin), f"{head}:refs/heads/main", f"{head}:refs/heads/staging")
    if not clone.exists():
        git(ctx.home, "clone", "-q", str(origin), str(clone))
        git(clone, "config", "user.email", "demo@spira.local")
        git(clone, "config", "user.name", "SPIRA demo")
    git(clone, "fetch", "-q", "origin")
    return clone


def build_evidence(ctx: DemoContext) -> str:
    """The promotion's evidence bundle (model card, gate reports) in the object store; its trailer value."""
    version = str(ctx.facts["model_version"])
    image = ["--image", str(ctx.facts["image"])] if ctx.images else []
    gates = []
    if (ctx.home / "clinical" / "verdict.json").exists():
        gates += ["--clinical", str(ctx.home / "clinical")]
    if (ctx.home / "gate" / "verdict.json").exists():
        gates += ["--load-gate", str(ctx.home / "gate")]
    out = ctx.run(
        [*SPIRA, "evidence", "build", "--version", version, *image, *gates],
        env=ctx.env(**ctx.stack.service_env("training")),
        capture=True,
    )
    evidence = out.stdout.strip().splitlines()[-1]
    ctx.facts["evidence"] = f"{evidence} (spira evidence show {version})"
    ctx.console.print(
        f"evidence: [bold]{escape(evidence)}[/bold]\n  show it with: spira evidence show {version}"
    )
    return evidence


def promote(ctx: DemoContext) -> None:
    clone = gitops_clone(ctx)
    env = {**ctx.env(), "PYTHONPATH": str(clone)}
    git(clone, "checkout", "-q", "-B", "staging", "origin/staging")
    evidence = build_evidence(ctx)
    if ctx.images:
        # every image the clone's kustomization pins (an origin seeded by an older checkout may pin fewer)
        pinned = pinned_images((clone / KUSTOMIZATION).read_text())
        ctx.run(
            [
                sys.executable,
                "-m",
                "ci.cli",
                "set-image",
                *set_image_args(pinned, ctx.facts["images"]),
                "--model-version",
                str(ctx.facts["model_version"]),
                "--record",
                f"demo-{int(time.time())}",
                # a GitOps origin seeded by an older checkout has a set-image without --evidence
                *(["--evidence", evidence] if "--evidence" in (clone / "ci" / "cli.py").read_text() else []),
            ],
            env=env,
            cwd=clone,
        )
        ctx.console.print(git(clone, "show", "--stat", "--format=%h %s%n%n%b", "HEAD"))
        git(clone, "push", "-q", "origin", "staging")
        git(clone, "checkout", "-q", "-B", "main", "origin/main")
        git(clone, "merge", "-q", "--no-ff", "-m", "Promote staging to production", "origin/staging")
        ctx.run(
            [
                sys.executable,
                "-m",
                "ci.cli",
                "verify-promotion",
                "--candidate",
                "HEAD",
                "--staging",
                "origin/staging",
                # the stack's registry stands in for the release registry; the stack's key for CI's
                "--registry",
                str(ctx.stack.registry),
            ],
            env=env,
            cwd=clone,
        )
        git(clone, "push", "-q", "origin", "main")
        ctx.facts["promotion"] = f"staging → main merged in {clone} (verify-promotion passed)"
    else:
        ctx.facts["promotion"] = "no image digest to promote (images skipped)"
    from mlflow.tracking import MlflowClient

    MlflowClient(ctx.stack.mlflow_uri).set_registered_model_alias(
        MODEL_NAME, "champion", str(ctx.facts["model_version"])
    )
    ctx.facts["champion"] = f"v{ctx.facts['model_version']}"
