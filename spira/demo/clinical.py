"""The demo's clinical steps: freeze the holdout once, and judge the preview with `spira gate clinical`.

The holdout is a second synthetic draw (its own seed, so no recording of it is in the training set; the
pipeline would exclude one that were), frozen with hospital-noise copies and uploaded as the features
bucket's current holdout: the pipeline's publish judges on it, and so does the gate below. The baseline is
the champion as served (the "active" server, as the cluster's Job uses the active Service), or, when the
preview is the champion itself or there is none, its recorded result in MLflow (none: no baseline).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spira.demo.steps import DemoContext

HOLDOUT_SEED_OFFSET = 1000  # the holdout's synthetic seed: the dataset's seed + this


def prepare_holdout(ctx: DemoContext) -> None:
    from spira.demo.steps import SPIRA

    seed, n = ctx.synth_seed + HOLDOUT_SEED_OFFSET, max(40, ctx.synth_n // 2)
    source, frozen = ctx.home / f"holdout-source-n{n}-s{seed}", ctx.home / f"holdout-n{n}-s{seed}"
    if not (source / "dataset.csv").exists():
        ctx.run([*SPIRA, "data", "synth", "--out", str(source), "--n", str(n), "--seed", str(seed)])
    out = ctx.run(
        [
            *SPIRA,
            "holdout",
            "freeze",
            "--data",
            str(source / "dataset.csv"),
            "--noise",
            str(source / "noise.csv"),
            "--out",
            str(frozen),
        ],
        env=ctx.env(**ctx.stack.service_env("training")),
        capture=True,
    )
    ctx.holdout_csv = frozen / "dataset.csv"
    ctx.facts["holdout"] = (
        f"{out.stdout.strip().splitlines()[-1]} ({ctx.holdout_csv}, current in the features bucket)"
    )


def run_clinical_gate(ctx: DemoContext) -> bool:
    import subprocess

    from spira.demo.steps import REPO, SPIRA

    out = ctx.home / "clinical"
    baseline = ["--baseline-url", ctx.active_url] if ctx.active_url else []
    cmd = [
        *SPIRA,
        "gate",
        "clinical",
        "--url",
        ctx.candidate_url,
        "--holdout",
        str(ctx.holdout_csv),
        *baseline,
        "--thresholds",
        "local",
        "--out",
        str(out),
    ]
    ctx.console.print(f"[dim]$ spira {' '.join(cmd[3:])}[/dim]")
    # the champion's recorded result is read from the stack's MLflow (as the operator)
    code = subprocess.run(cmd, env=ctx.env(MLFLOW_TRACKING_URI=ctx.stack.mlflow_uri), cwd=REPO).returncode
    ctx.facts["clinical_gate"] = {0: "PASS", 1: "FAIL", 2: "could not run"}.get(code, f"exit {code}")
    if (out / "verdict.json").exists():
        verdict = json.loads((out / "verdict.json").read_text())
        ctx.facts["clinical_gate"] = f"{verdict['verdict']} on holdout {verdict['holdout']['version']}" + (
            f": {verdict['reasons'][0]}" if verdict["reasons"] else ""
        )
        ctx.facts["clinical_report"] = str(out / "report.html")
    return code == 0
