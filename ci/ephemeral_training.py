"""The training image's test by digest in CI: every step of the WorkflowTemplate rendered with THIS digest
(`spira workflow render`, the same function) is a command the image accepts.

Each step's container (its command and args, unchanged) runs once with `--help` appended, restricted as
the step pod runs (read-only root, uid 10001, no capabilities, no privilege escalation, a tmpfs at /tmp)
and without network: the stage CLI must load in the image and parse the very options the template gives
it (an option renamed in the code but not in the render, or a stage the image does not carry, exits 2).
The stages themselves are played against a real stack by `spira workflow play` (tests/e2e)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ci.ephemeral import HARDENED
from ci.podman import Podman

# Where `spira workflow play` plays the template: the render of the local environment.
RENDER_ENV = "local"


@dataclass
class TrainingReport:
    ref: str
    checks: dict[str, int] = field(default_factory=dict)  # step -> exit status of its command with --help
    error: str | None = None
    total_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.checks) and not any(self.checks.values())


def step_commands(ref: str) -> dict[str, list[str]]:
    """Each container template of the WorkflowTemplate rendered with `ref`: its command + args."""
    from spira.workflow.render import render_workflow_objects, resolve_parameters

    (template,) = [d for d in render_workflow_objects(RENDER_ENV, ref) if d["kind"] == "WorkflowTemplate"]
    template = resolve_parameters(template)  # the values Argo substitutes when it runs a step
    return {
        t["name"]: [*t["container"]["command"], *t["container"]["args"]]
        for t in template["spec"]["templates"]
        if "container" in t
    }


def help_run_args(ref: str, command: list[str]) -> list[str]:
    """`podman run` of one step's command with `--help`, restricted like the step pod, no network."""
    return [
        "run",
        "--rm",
        "--network",
        "none",
        *HARDENED,
        "--tmpfs",
        "/tmp:rw,mode=1777,size=64m",
        "--pull",
        "never",
        "--entrypoint",
        command[0],
        ref,
        *command[1:],
        "--help",
    ]


def run_training_checks(podman: Podman, ref: str, out_dir: Path, tls_verify: bool = False) -> TrainingReport:
    start = time.monotonic()
    report = TrainingReport(ref)
    out_dir.mkdir(parents=True, exist_ok=True)
    logs: list[str] = []
    try:
        podman("pull", "-q", f"--tls-verify={str(tls_verify).lower()}", ref, timeout=1800)
        for step, command in step_commands(ref).items():
            proc = podman(*help_run_args(ref, command), check=False, timeout=300)
            report.checks[step] = proc.returncode
            logs.append(f"== {step}: {' '.join(command)} --help -> {proc.returncode}")
            logs.append(((proc.stdout or b"") + (proc.stderr or b"")).decode(errors="replace")[-2000:])
    except Exception as exc:  # every failure ends in the report
        report.error = f"{type(exc).__name__}: {exc}"
    finally:
        report.total_s = round(time.monotonic() - start, 1)
        (out_dir / "training.log").write_text("\n".join(logs) + "\n")
        (out_dir / "training-report.json").write_text(
            json.dumps({**asdict(report), "passed": report.passed}, indent=2) + "\n"
        )
    return report
