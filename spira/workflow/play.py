"""`spira workflow play`: the RENDERED WorkflowTemplate's steps run as podman containers, in DAG order,
against the local stack (OpenBao, SeaweedFS, MLflow), by the training image's digest.

The plan is pure (`plan_steps`, `container_args`): from the template's entry-point DAG and each step's
template to `podman run` arguments. Podman is not Argo, so a few fields are translated and exactly these
are changed; everything else (command, args, env, the securityContext's user, read-only root, dropped
capabilities and no privilege escalation, the volumes' mount paths) is the rendered template's:

- DROPPED: the GPU resource (`nvidia.com/gpu`), `nodeSelector` and `tolerations` (they schedule the step
  onto the GPU pool; a CPU host has no such node), the other resource requests and limits (scheduling
  hints here, not limits: one step runs at a time), and `retryStrategy` (a play runs each step once; the
  replay is the retry: completed stages are reused by their content keys).
- REPLACED: the projected volume (serviceAccountToken + the ConfigMap vault-ca) by a host directory holding
  a token minted by the stack's key for the training service and the stack's CA as ca.crt, the two files a
  cluster projects; each emptyDir by a fresh host directory; the data input artifact (which Argo fetches
  from the object store) by the folder of the given dataset CSV, read-only, at the artifact's path, with the
  dataset and noise CSVs at the names the step's arguments use; VAULT_ADDR (the cluster's Service) by the
  local OpenBao's address, whose TLS certificate names 127.0.0.1.
  `--preset` takes the play's value; `--epochs` is appended when the play is given one.
- HOST NETWORK: these hosts have no container networking (NOTES): the step reaches Vault, S3 and MLflow
  over loopback, as ci/kube_play.py's pods do.
- NOT PLAYED: the `candidate` step, which asks GitHub to open the change to staging; locally the demo's
  promotion does that (`spira demo`). A DAG task that is not a stage step is listed with the reason.

A step is reused when its stage's outcome (`--json-out`, the template's output parameter) says the stage
was skipped: its content key was complete in the object store. The play exits 0 once the publish step's
version is found in MLflow's registry.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Doc = dict[str, Any]

GPU_RESOURCE = "nvidia.com/gpu"
TOKEN_VOLUME_SOURCE = "serviceAccountToken"
CA_FILE = "ca.crt"
# DAG tasks that only a cluster runs, and why (spira/workflow/render.py names them)
CLUSTER_ONLY = {"candidate": "opens the change to staging on GitHub (cluster only; locally: spira demo)"}
STEP_LABEL = "dev.spira.workflow-step"
RUN_LABEL = "dev.spira.workflow-play"


class PlayError(ValueError):
    """The rendered template is not what the play can run, or the inputs cannot reach the containers."""


@dataclass(frozen=True)
class PlayStep:
    """One task of the entry-point DAG with its template (a deep copy of the rendered one)."""

    name: str
    template: Doc
    depends: tuple[str, ...]
    skip_reason: str | None = None

    @property
    def container(self) -> Doc:
        return self.template["container"]

    @property
    def deadline_s(self) -> float | None:
        value = self.template.get("activeDeadlineSeconds")
        return float(value) if value is not None else None

    def outcome_path(self) -> str | None:
        """Where the step writes its outcome (the template's output parameter valueFrom.path)."""
        for param in self.template.get("outputs", {}).get("parameters", []):
            path = param.get("valueFrom", {}).get("path")
            if path:
                return path
        return None


def find_template(docs: Sequence[Doc]) -> Doc:
    """The WorkflowTemplate among the rendered objects, its `{{workflow.parameters.*}}` replaced by its
    arguments' values as Argo does when it runs a step."""
    from spira.workflow.render import resolve_parameters

    found = [d for d in docs if d.get("kind") == "WorkflowTemplate"]
    if len(found) != 1:
        raise PlayError(f"expected one WorkflowTemplate among the rendered objects, found {len(found)}")
    return resolve_parameters(found[0])


def plan_steps(workflow_template: Doc, entrypoint: str | None = None) -> list[PlayStep]:
    """The entry point's DAG tasks in an order that respects their dependencies (declared order among
    tasks that are ready together), each with its template."""
    spec = workflow_template["spec"]
    templates = {t["name"]: t for t in spec["templates"]}
    entry = templates.get(entrypoint or spec["entrypoint"])
    if entry is None or "dag" not in entry:
        raise PlayError(f"the entry point {entrypoint or spec['entrypoint']!r} is not a DAG template")
    tasks = entry["dag"]["tasks"]
    names = [t["name"] for t in tasks]
    for task in tasks:
        if "depends" in task:
            raise PlayError(f"task {task['name']}: `depends` expressions are not played; use dependencies")
        unknown = set(task.get("dependencies", [])) - set(names)
        if unknown:
            raise PlayError(f"task {task['name']} depends on unknown tasks {sorted(unknown)}")
    order: list[str] = []
    while len(order) < len(tasks):
        ready = [t for t in tasks if t["name"] not in order and set(t.get("dependencies", [])) <= set(order)]
        if not ready:
            raise PlayError(f"the DAG has a cycle among {sorted(set(names) - set(order))}")
        order.append(ready[0]["name"])
    steps = []
    for name in order:
        task = next(t for t in tasks if t["name"] == name)
        template = copy.deepcopy(templates[task["template"]])
        if "container" not in template:
            raise PlayError(f"task {name}: template {task['template']!r} is not a container template")
        steps.append(PlayStep(name, template, tuple(task.get("dependencies", [])), CLUSTER_ONLY.get(name)))
    return steps


def step_arguments(args: Sequence[str], preset: str | None, epochs: int | None) -> list[str]:
    """The template's args with the play's preset (replacing the rendered one) and epochs (appended)."""
    out = list(args)
    if preset is not None:
        if "--preset" not in out:
            raise PlayError("the step's arguments have no --preset to replace")
        out[out.index("--preset") + 1] = preset
    if epochs is not None:
        out += ["--epochs", str(epochs)]
    return out


@dataclass(frozen=True)
class PlayInputs:
    """What the containers are given on this host."""

    image: str  # name@sha256:...
    data_dir: Path  # the dataset CSV's folder (the recordings are relative to it)
    dataset_csv: Path
    noise_csv: Path
    token_dir: Path  # token + ca.crt
    vault_addr: str  # the local stack's OpenBao (https://127.0.0.1:PORT)
    preset: str | None = None
    epochs: int | None = None


@dataclass
class ContainerPlan:
    args: list[str]  # `podman run` arguments after "run"
    scratch: dict[str, Path]  # mount path -> host directory (the emptyDirs)
    dropped: list[str] = field(default_factory=list)


def _data_mounts(step: PlayStep, inputs: PlayInputs) -> list[str]:
    """The data artifact's path: the dataset folder, and the two CSVs at the names the args give."""
    artifacts = [a for a in step.template.get("inputs", {}).get("artifacts", []) if a.get("path")]
    mounts = []
    args = step.container.get("args", [])
    for artifact in artifacts:
        path = artifact["path"]
        mounts += ["-v", f"{inputs.data_dir}:{path}:ro"]
        # a CSV may name its recordings by absolute host paths (under the folder): those resolve too
        mounts += ["-v", f"{inputs.data_dir}:{inputs.data_dir}:ro"]
        for option, host in (("--data", inputs.dataset_csv), ("--noise", inputs.noise_csv)):
            if option in args:
                target = args[args.index(option) + 1]
                if not target.startswith(path.rstrip("/") + "/"):
                    raise PlayError(f"step {step.name}: {option} {target} is outside its artifact {path}")
                mounts += ["-v", f"{host}:{target}:ro"]
    return mounts


def container_args(
    step: PlayStep,
    spec: Doc,
    inputs: PlayInputs,
    *,
    name: str,
    run_id: str,
    scratch_root: Path,
) -> ContainerPlan:
    """`podman run` arguments for one step (see the module docstring for what is translated)."""
    container = copy.deepcopy(step.container)
    if "@sha256:" not in inputs.image or container.get("image") != inputs.image:
        raise PlayError(
            f"step {step.name} must run the given image by digest, not {container.get('image')!r}"
        )
    dropped = []
    for key in ("nodeSelector", "tolerations", "retryStrategy"):
        if key in step.template:
            dropped.append(f"{step.name}.{key}")
    for part in ("requests", "limits"):
        for resource in sorted(container.get("resources", {}).get(part, {})):
            dropped.append(f"{step.name}.resources.{part}.{resource}")
    pod_ctx = {**spec.get("securityContext", {}), **step.template.get("securityContext", {})}
    sec = container.get("securityContext", {})
    user = sec.get("runAsUser", pod_ctx.get("runAsUser"))
    group = sec.get("runAsGroup", pod_ctx.get("runAsGroup"))
    if user is None or user == 0 or not (sec.get("runAsNonRoot") or pod_ctx.get("runAsNonRoot")):
        raise PlayError(f"step {step.name} does not run as a non-root uid")
    args = [
        "--name",
        name,
        "--label",
        f"{STEP_LABEL}={step.name}",
        "--label",
        f"{RUN_LABEL}={run_id}",
        "--network",
        "host",
        "--pull",
        "missing" if container.get("imagePullPolicy") == "IfNotPresent" else "always",
        "--tls-verify=false",  # the loopback registry speaks plain HTTP
        "--user",
        f"{user}:{group if group is not None else user}",
    ]
    if sec.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    if sec.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    for cap in sec.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", cap]
    for var in container.get("env", []):
        if "value" not in var:
            raise PlayError(f"step {step.name}: env {var.get('name')} is not a plain value")
        value = var["value"]
        if var["name"] == "VAULT_ADDR":
            value = inputs.vault_addr
        args += ["--env", f"{var['name']}={value}"]
    volumes = {v["name"]: v for v in [*spec.get("volumes", []), *step.template.get("volumes", [])]}
    scratch: dict[str, Path] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"])
        if volume is None:
            raise PlayError(f"step {step.name} mounts an undeclared volume {mount['name']!r}")
        path = mount["mountPath"]
        if "emptyDir" in volume:
            host = Path(tempfile.mkdtemp(prefix=f"{step.name}-{mount['name']}-", dir=scratch_root))
            host.chmod(0o1777)
            scratch[path] = host
            args += ["-v", f"{host}:{path}:rw"]
        elif "projected" in volume:
            sources = volume["projected"].get("sources", [])
            if not any(TOKEN_VOLUME_SOURCE in s for s in sources):
                raise PlayError(f"volume {mount['name']!r} is not a projected serviceAccountToken")
            args += ["-v", f"{inputs.token_dir}:{path}:ro"]
        else:
            raise PlayError(f"step {step.name}: volume {mount['name']!r} has no local equivalent")
    args += _data_mounts(step, inputs)
    command = container.get("command")
    if command:
        args += ["--entrypoint", json.dumps(command)]
    args.append(inputs.image)
    args += step_arguments(container.get("args", []), inputs.preset, inputs.epochs)
    return ContainerPlan(args, scratch, dropped)


# --- the run ------------------------------------------------------------------------------------------


@dataclass
class StepOutcome:
    name: str
    status: str  # succeeded | failed | not run | cluster only
    seconds: float = 0.0
    reused: bool | None = None  # None: unknown (not run, or no outcome written)
    key: str | None = None
    exit_code: int | None = None
    detail: str = ""
    outcome: Doc | None = None


@dataclass
class PlayResult:
    steps: list[StepOutcome]
    version: str | None = None
    dropped: list[str] = field(default_factory=list)

    @property
    def failed(self) -> StepOutcome | None:
        return next((s for s in self.steps if s.status == "failed"), None)


class StepRunner(ABC):
    """Runs one step's container to its end."""

    @abstractmethod
    def run(self, args: Sequence[str], timeout_s: float | None) -> tuple[int, str]:
        """`podman run` with these arguments: (exit code, its output)."""

    @abstractmethod
    def remove(self, name: str) -> None:
        """Remove the container (whatever its state)."""


class PodmanStepRunner(StepRunner):
    def __init__(self, podman: Any) -> None:
        self.podman = podman

    def run(self, args: Sequence[str], timeout_s: float | None) -> tuple[int, str]:
        import subprocess

        name = args[args.index("--name") + 1]
        try:
            proc = self.podman("run", *args, check=False, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.podman("kill", name, check=False, timeout=60)
            return 124, f"the step ran past its activeDeadlineSeconds ({timeout_s:.0f} s) and was killed"
        out = (proc.stdout or b"") + (proc.stderr or b"")
        return proc.returncode, out.decode(errors="replace")

    def remove(self, name: str) -> None:
        self.podman("rm", "-f", "--ignore", name, check=False, timeout=120)


def read_outcome(plan: ContainerPlan, path: str | None) -> Doc | None:
    """The step's outcome file, read from the host directory behind the emptyDir that holds it."""
    if path is None:
        return None
    for mount, host in plan.scratch.items():
        prefix = mount.rstrip("/") + "/"
        if path.startswith(prefix):
            file = host / path[len(prefix) :]
            return json.loads(file.read_text()) if file.exists() else None
    return None


def play_steps(
    steps: Sequence[PlayStep],
    spec: Doc,
    inputs: PlayInputs,
    runner: StepRunner,
    *,
    run_id: str,
    on_step: Callable[[StepOutcome], None] = lambda _s: None,
    before_step: Callable[[PlayStep], None] = lambda _s: None,
    clock: Callable[[], float] = time.monotonic,
) -> PlayResult:
    """Run the steps in order; stop at the first that fails (the rest: not run). `before_step` runs before
    each container starts (the wiring mints the step's token there, as a kubelet projects a fresh one)."""
    result = PlayResult([])
    scratch_root = Path(tempfile.mkdtemp(prefix=f"spira-play-{run_id}-"))
    try:
        for step in steps:
            if result.failed is not None:
                outcome = StepOutcome(step.name, "not run", detail=f"after {result.failed.name} failed")
            elif step.skip_reason is not None:
                outcome = StepOutcome(step.name, "cluster only", detail=step.skip_reason)
            else:
                before_step(step)
                outcome = _run_one(step, spec, inputs, runner, run_id, scratch_root, clock, result)
            result.steps.append(outcome)
            on_step(outcome)
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)
    return result


def _run_one(
    step: PlayStep,
    spec: Doc,
    inputs: PlayInputs,
    runner: StepRunner,
    run_id: str,
    scratch_root: Path,
    clock: Callable[[], float],
    result: PlayResult,
) -> StepOutcome:
    name = f"spira-play-{run_id}-{step.name}"
    plan = container_args(step, spec, inputs, name=name, run_id=run_id, scratch_root=scratch_root)
    result.dropped += plan.dropped
    start = clock()
    try:
        code, output = runner.run(plan.args, step.deadline_s)
        seconds = clock() - start
        outcome_doc = read_outcome(plan, step.outcome_path()) if code == 0 else None
    finally:
        runner.remove(name)
    if code != 0:
        return StepOutcome(step.name, "failed", seconds, exit_code=code, detail=_tail(output))
    outcome = StepOutcome(step.name, "succeeded", seconds, exit_code=0, outcome=outcome_doc)
    stages = (outcome_doc or {}).get("stages", [])
    if len(stages) == 1:
        outcome.reused, outcome.key = bool(stages[0]["skipped"]), stages[0]["key"]
    if outcome_doc and "publish" in outcome_doc:
        result.version = str(outcome_doc["publish"]["version"])
    return outcome


_ERROR_LINE = re.compile(r"error:.*", re.IGNORECASE)


def _tail(output: str, lines: int = 12) -> str:
    """The container's last lines; its `error:` line first when it printed one."""
    text = output.strip().splitlines()
    errors = [m.group(0) for line in text for m in [_ERROR_LINE.search(line)] if m]
    tail = text[-lines:]
    return "\n".join([*errors[-1:], *[line for line in tail if line not in errors[-1:]]])


def step_rows(result: PlayResult) -> list[tuple[str, str, str, str, str]]:
    """(step, status, seconds, reused-or-computed, key) per step: the table the command prints."""
    rows = []
    for s in result.steps:
        work = "" if s.reused is None else ("reused" if s.reused else "computed")
        status = s.status if s.exit_code in (None, 0) else f"{s.status} (exit {s.exit_code})"
        seconds = f"{s.seconds:.1f}" if s.status in {"succeeded", "failed"} else ""
        rows.append((s.name, status, seconds, work, s.key or ""))
    return rows


def data_inputs(dataset_csv: Path, noise_csv: Path) -> tuple[Path, Path, Path]:
    """(data folder, dataset CSV, noise CSV), absolute. The recordings both CSVs name must lie in the
    dataset CSV's folder (the one folder the step mounts, as the cluster fetches one data prefix)."""
    from training.data.dataset import load_dataset_csv, load_noise_csv

    dataset, noise = dataset_csv.resolve(), noise_csv.resolve()
    folder = dataset.parent
    paths = [e.path for e in load_dataset_csv(dataset)] + list(load_noise_csv(noise))
    outside = [p for p in paths if not Path(p).resolve().is_relative_to(folder)]
    if outside:
        raise PlayError(
            f"{len(outside)} recordings are outside {folder} (e.g. {outside[0]}): the steps mount that "
            "folder only; keep the recordings under the dataset CSV's folder"
        )
    if noise.parent != folder:
        raise PlayError(f"the noise CSV must be in the dataset CSV's folder {folder}, not {noise.parent}")
    return folder, dataset, noise


def token_files(directory: Path, token: str, ca: Path) -> Path:
    """The projected volume's stand-in, readable by the step's uid: the token and Vault's CA beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    (directory / "token").write_text(token)
    (directory / "token").chmod(0o644)
    (directory / CA_FILE).write_bytes(ca.read_bytes())
    (directory / CA_FILE).chmod(0o644)
    return directory
