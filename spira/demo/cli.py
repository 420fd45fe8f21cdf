"""`spira demo [--degrade latency|errors|version|accuracy] [--no-images] [--data CSV --noise CSV]`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from spira.demo import burst, clinical, steps
from spira.stack import StackConfig, StackError

DEGRADATIONS = {
    "latency": "latency=1500",  # p95/p99 far over the local thresholds
    "errors": "errors=0.3",  # 30 % answered 500
    "version": "version=0-unexpected",  # answers carry the wrong model version
}
# Degradations of the model itself: a real training run with this fraction of its labels flipped, served
# as it is; the load gate passes it and the clinical gate on the frozen holdout must block it.
TRAINING_DEGRADATIONS = {"accuracy": 0.5}


def demo(
    data: Annotated[
        Path | None, typer.Option(help="SPIRA dataset CSV (file_path,class); default: synthetic")
    ] = None,
    noise: Annotated[Path | None, typer.Option(help="noise list CSV, with --data")] = None,
    n: Annotated[int, typer.Option(help="synthetic recordings")] = 160,
    seed: Annotated[int, typer.Option(help="synthetic dataset seed")] = 11,
    preset: Annotated[str, typer.Option(help="training preset")] = "fast",
    epochs: Annotated[int | None, typer.Option(help="override the preset's epochs (a quicker demo)")] = None,
    images: Annotated[bool, typer.Option(help="build, push and test the model and loadtest images")] = True,
    degrade: Annotated[
        str | None,
        typer.Option(
            help="degrade the candidate through a fault proxy in front of it: latency | errors | version; "
            "or train it worse: accuracy (half its labels flipped)"
        ),
    ] = None,
    gate_duration: Annotated[int, typer.Option(help="seconds of gate load")] = 20,
) -> None:
    """Data → pipeline → Bento → images by digest → preview + gate → promotion, on the local stack."""
    console = Console()
    if (data is None) != (noise is None):
        raise typer.BadParameter("give both --data and --noise, or neither")
    if degrade is not None and degrade not in {**DEGRADATIONS, **TRAINING_DEGRADATIONS}:
        raise typer.BadParameter(
            f"--degrade must be one of {', '.join([*DEGRADATIONS, *TRAINING_DEGRADATIONS])}"
        )
    ctx = steps.DemoContext(
        home=StackConfig.load().home / "demo",
        console=console,
        synth_n=n,
        synth_seed=seed,
        data_csv=data,
        noise_csv=noise,
        preset=preset,
        epochs=epochs,
        images=images,
        degrade=DEGRADATIONS.get(degrade or ""),
        label_noise=TRAINING_DEGRADATIONS.get(degrade or ""),
        gate_duration_s=gate_duration,
    )
    timings: list[tuple[str, float, str]] = []
    plan = [
        ("local stack", steps.start_stack),
        ("dataset", steps.prepare_data),
        ("holdout", clinical.prepare_holdout),
        ("pipeline", steps.run_pipeline),
        ("burst through the queue", burst.burst),
        ("bento", steps.build_bento),
        ("images + ephemeral tests", steps.build_images),
        ("preview + active", steps.start_preview),
    ]
    passed = False
    try:
        for title, step in plan:
            _step(console, ctx, title, step, timings)
        console.print(Rule("gate"))
        started = time.monotonic()
        passed = steps.run_gate(ctx)
        timings.append(("gate", time.monotonic() - started, str(ctx.facts["gate"])))
        console.print(Rule("clinical gate"))
        started = time.monotonic()
        clinical_passed = clinical.run_clinical_gate(ctx)
        timings.append(("clinical gate", time.monotonic() - started, str(ctx.facts["clinical_gate"])))
        passed = passed and clinical_passed
        if passed:
            _step(console, ctx, "promotion", steps.promote, timings)
    except (steps.StepFailed, StackError) as exc:
        console.print(f"[bold red]demo stopped:[/bold red] {exc}")
        _summary(console, ctx, timings)
        raise typer.Exit(1) from exc
    finally:
        steps.stop_servers(ctx)
    _summary(console, ctx, timings)
    if not passed:
        console.print("[bold red]the gate blocked this candidate; the champion is unchanged[/bold red]")
        raise typer.Exit(1)
    console.print("the local stack keeps running; stop it with [bold]spira stack down[/bold]")


def _step(console: Console, ctx: steps.DemoContext, title: str, fn, timings: list) -> None:
    console.print(Rule(title))
    started = time.monotonic()
    try:
        fn(ctx)
    except Exception:
        timings.append((title, time.monotonic() - started, "failed"))
        raise
    timings.append((title, time.monotonic() - started, "ok"))


def _summary(console: Console, ctx: steps.DemoContext, timings: list[tuple[str, float, str]]) -> None:
    f = ctx.facts
    facts = Table(title="SPIRA demo", show_header=False)
    facts.add_column(style="bold")
    facts.add_column(overflow="fold")
    metrics = f.get("metrics") or {}
    shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, int | float))
    # every image the kustomization pins, by digest (or why there is none)
    refs = f.get("images")
    images = (
        [(f"{i} image", r) for i, r in refs.items()]
        if isinstance(refs, dict)
        else [("image", f.get("image"))]
    )
    for label, value in [
        ("dataset", f.get("dataset")),
        ("dataset in S3", f.get("dataset_s3")),
        ("stages reused", ", ".join(f.get("stages_reused", [])) or "none"),
        ("test metrics", shown or None),
        ("model version", f.get("model_version")),
        ("burst", f.get("burst")),
        ("publish", (f.get("publish") or {}).get("reason") if isinstance(f.get("publish"), dict) else None),
        ("bento", f.get("bento")),
        *images,
        ("image builds", f.get("image_builds")),
        ("ephemeral test", f.get("ephemeral_test")),
        ("preview", f.get("preview")),
        ("fault proxy", f.get("fault_proxy")),
        ("preview pod", f.get("preview_pod")),
        ("active", f.get("active")),
        ("holdout", f.get("holdout")),
        ("gate verdict", f.get("gate")),
        ("clinical gate", f.get("clinical_gate")),
        ("clinical report", f.get("clinical_report")),
        ("promotion", f.get("promotion")),
        ("evidence", f.get("evidence")),
        ("champion", f.get("champion", "unchanged")),
        ("MLflow UI", f.get("mlflow_ui")),
        ("Locust report", f.get("locust_report")),
    ]:
        if value is not None:
            facts.add_row(label, str(value))
    console.print(facts)
    times = Table(title="time per step")
    for col in ("step", "seconds", "result"):
        times.add_column(col)
    for title, seconds, result in timings:
        times.add_row(title, f"{seconds:.1f}", result)
    times.add_row("total", f"{sum(t for _, t, _ in timings):.1f}", "")
    console.print(times)
