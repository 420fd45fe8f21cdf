"""`spira pipeline …`: the training stages as commands (contract: features | train | evaluate | publish | run).

Every command takes the same inputs (--data, --noise, --preset) so each stage can run as its own Job:
    spira pipeline run --data DIR/dataset.csv --noise DIR/noise.csv --preset fast
Settings come from Vault (the training service's secret) unless --settings points at a JSON file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from training.pipeline import STAGES
from training.presets import PRESETS, Preset, UnknownPreset, get_preset
from training.stages.common import Stage

app = typer.Typer(
    help="Training pipeline stages: features → train → evaluate → publish (content-addressed, resumable).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
out = Console()

DataOpt = Annotated[Path, typer.Option("--data", help="dataset CSV (file_path,class; 0 control, 1 patient)")]
NoiseOpt = Annotated[Path, typer.Option("--noise", help="hospital-noise CSV (file_path)")]
PresetOpt = Annotated[str, typer.Option("--preset", help=f"one of: {', '.join(sorted(PRESETS))}")]
SettingsOpt = Annotated[
    Path | None, typer.Option("--settings", help="JSON file with the settings (default: Vault)")
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="override the preset's seed")]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="override the preset's epochs")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="progress bars")]
JsonOutOpt = Annotated[Path | None, typer.Option("--json-out", help="write the outcome as JSON")]
HoldoutOpt = Annotated[
    str | None,
    typer.Option(
        "--holdout",
        help="frozen holdout (its dataset.csv, folder or s3:// URL); default: the features bucket's current one",
    ),
]
ClinicalOpt = Annotated[
    str,
    typer.Option("--clinical-thresholds", help="clinical gate margins publish judges with (an environment)"),
]
LabelNoiseOpt = Annotated[
    float | None,
    typer.Option(
        "--label-noise", min=0.0, max=1.0, help="flip this fraction of training labels (a worse model)"
    ),
]


def _progress(enabled: bool) -> Any:
    from tqdm import tqdm

    def bar(iterable: Any, desc: str = "", unit: str = "it") -> Any:
        return tqdm(iterable, desc=desc, unit=unit, disable=not enabled, leave=False, dynamic_ncols=True)

    return bar


def _preset(name: str, seed: int | None, epochs: int | None, label_noise: float | None = None) -> Preset:
    try:
        return get_preset(name).with_overrides(seed=seed, epochs=epochs, label_noise=label_noise)
    except UnknownPreset as exc:
        raise typer.BadParameter(str(exc.args[0]), param_hint="--preset") from exc


def _settings_and_lease(settings_file: Path | None) -> tuple[Any, Any]:
    """The settings and the run's lease on their S3 key: entered right after reading them, held while the
    command runs (`spira secrets rotate --service training` waits for it)."""
    from training.wiring import load_versioned_settings, run_lease

    settings, version = load_versioned_settings(settings_file)
    return settings, run_lease(settings, version)


def _pipeline(
    data: Path,
    noise: Path,
    preset: Preset,
    settings: Any,
    progress: bool,
    holdout: str | None = None,
    clinical_thresholds: str = "local",
) -> Any:
    from training.wiring import build_pipeline

    return build_pipeline(
        settings,
        data,
        noise,
        preset,
        _progress(progress),
        holdout=holdout,
        clinical_thresholds=clinical_thresholds,
    )


def _fail(exc: Exception) -> typer.Exit:
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(str(exc))}")
    return typer.Exit(code=2)


def _guarded(fn: Any) -> Any:
    """Turn expected failures (bad data, service down, stage not ready) into one clear line and exit 2."""
    from spira_core.clinical.holdout import HoldoutError
    from spira_core.clinical.thresholds import ClinicalThresholdsError
    from training.artifacts import ArtifactCorrupt
    from training.data import DatasetError
    from training.ports import ArtifactMissing, ServiceUnavailable
    from training.stages.common import StageNotReady
    from training.wiring import SettingsError

    try:
        return fn()
    except (
        DatasetError,
        ServiceUnavailable,
        StageNotReady,
        SettingsError,
        ArtifactCorrupt,
        ArtifactMissing,
        HoldoutError,
        ClinicalThresholdsError,
        ValueError,
    ) as exc:
        raise _fail(exc) from exc


def _print_stage(result: Any) -> None:
    state = "skipped (already complete)" if result.skipped else f"done in {result.seconds:.1f} s"
    console.print(f"[bold]{result.stage}[/] {result.key}: {state}")
    if result.stage == "features":
        _print_data_report(result.output.read_json("report.json"))


def _print_data_report(report: dict[str, Any]) -> None:
    console.print(
        f"  data: {report['files_listed']} listed, {report['files_used']} used, "
        f"{report['files_excluded']} excluded {report['excluded_by_error'] or ''}; "
        f"noise clips: {report['noise_used']}/{report['noise_listed']}; splits {report['split_counts']}"
    )
    for bad in report["bad_files"][:20]:
        console.print(f"  [yellow]excluded[/] {bad['file']}: {bad['error']}: {bad['message']}")
    if len(report["bad_files"]) > 20:
        console.print(f"  … and {len(report['bad_files']) - 20} more (see report.json)")


def _summary(results: list[Any]) -> None:
    table = Table(title="pipeline")
    for col in ("stage", "key", "status", "seconds"):
        table.add_column(col)
    for r in results:
        table.add_row(r.stage, r.key, "skipped" if r.skipped else "ran", f"{r.seconds:.1f}")
    console.print(table)
    evaluated = next((r for r in results if r.stage == "evaluate"), None)
    if evaluated is not None:
        _metrics_table(evaluated.output.read_json("metrics.json"))


def _metrics_table(metrics: dict[str, Any]) -> None:
    table = Table(title="test set, per file (mean over windows)")
    names = ("accuracy", "f1", "sensitivity", "specificity", "roc_auc")
    table.add_column("condition")
    for n in names:
        table.add_column(n, justify="right")
    for cond, values in metrics.items():
        table.add_row(cond, *(f"{values[n]:.3f}" for n in names))
    console.print(table)


def _after_evaluate(result: Any) -> None:
    _metrics_table(result.output.read_json("metrics.json"))
    out.print(result.key)


def _print_publish(result: Any) -> None:
    d = result.output.read_json("publish.json")
    alias = "alias candidate set" if d["candidate"] else "not a candidate"
    # a skipped publish replays the decision taken when the version was registered; the registry's aliases
    # may have moved since (e.g. a promotion made it champion), so say when the reason was true
    when = "when it was published, " if result.skipped else ""
    out.print(f"registered {d['model_name']} version {d['version']} ({when}{alias}: {d['reason']})")


# What a stage's command prints after the stage line (its key, unless said otherwise here).
_AFTER: dict[str, Any] = {"evaluate": _after_evaluate, "publish": _print_publish}


def _outcome(results: list[Any]) -> dict[str, Any]:
    """What ran, as JSON: each stage's key, reuse and time, and the test metrics and publish decision when
    those stages were among them."""
    by_stage = {r.stage: r for r in results}
    outcome: dict[str, Any] = {
        "stages": [
            {"stage": r.stage, "key": r.key, "skipped": r.skipped, "seconds": r.seconds} for r in results
        ]
    }
    if "evaluate" in by_stage:
        outcome["metrics"] = by_stage["evaluate"].output.info["metrics"]
    if "publish" in by_stage:
        outcome["publish"] = by_stage["publish"].output.read_json("publish.json")
    return outcome


def _command(stage: Stage | None) -> Any:
    """One stage's command, or (stage None) `run`: every stage in order."""

    def command(
        data: DataOpt,
        noise: NoiseOpt,
        preset: PresetOpt = "exp3.5",
        seed: SeedOpt = None,
        epochs: EpochsOpt = None,
        settings: SettingsOpt = None,
        progress: ProgressOpt = True,
        json_out: JsonOutOpt = None,
        holdout: HoldoutOpt = None,
        clinical_thresholds: ClinicalOpt = "local",
        label_noise: LabelNoiseOpt = None,
    ) -> None:
        p = _preset(preset, seed, epochs, label_noise)
        loaded, lease = _guarded(lambda: _settings_and_lease(settings))
        with lease:
            pipeline = _guarded(
                lambda: _pipeline(data, noise, p, loaded, progress, holdout, clinical_thresholds)
            )
            if stage is None:
                results = _guarded(lambda: pipeline.run_all(_print_stage))
                _summary(results)
                _print_publish(results[-1])
            else:
                results = [_guarded(lambda: pipeline.run(stage.name))]
                _print_stage(results[0])
                _AFTER.get(stage.name, lambda r: out.print(r.key))(results[0])
        if json_out is not None:
            json_out.write_text(json.dumps(_outcome(results), indent=2, sort_keys=True) + "\n")

    command.__doc__ = (
        stage.summary()
        if stage
        else "Every stage in order; completed stages are skipped. Prints the registered model version."
    )
    return command


# one command per stage, declared by the stage list (training.pipeline.STAGES) and nowhere else, and `run`
for _stage in STAGES:
    app.command(_stage.name)(_command(_stage))
app.command("run")(_command(None))


@app.command()
def fingerprint(
    data: DataOpt,
    noise: NoiseOpt,
    preset: PresetOpt = "exp3.5",
    seed: SeedOpt = None,
    epochs: EpochsOpt = None,
    settings: SettingsOpt = None,
    progress: ProgressOpt = False,
    holdout: HoldoutOpt = None,
    clinical_thresholds: ClinicalOpt = "local",
    check: Annotated[
        bool, typer.Option("--check", help="say `changed` or `unchanged` (the last stage already complete)")
    ] = False,
    result_file: Annotated[
        Path | None, typer.Option("--result-file", help="also write `changed` or `unchanged` to this file")
    ] = None,
) -> None:
    """Every stage's content key for these inputs and whether it is complete; nothing runs."""
    p = _preset(preset, seed, epochs)
    loaded, lease = _guarded(lambda: _settings_and_lease(settings))
    with lease:
        pipeline = _guarded(lambda: _pipeline(data, noise, p, loaded, progress, holdout, clinical_thresholds))
        stages = _guarded(pipeline.fingerprint)
    for name, entry in stages.items():
        console.print(f"[bold]{name}[/] {entry['key']}: {'complete' if entry['complete'] else 'to run'}")
    result = "unchanged" if stages[STAGES[-1].name]["complete"] else "changed"
    if result_file is not None:
        result_file.write_text(result)
    out.print(result if check else json.dumps(stages, indent=2, sort_keys=True))


@app.command()
def presets() -> None:
    """List the presets and their settings."""
    out.print_json(json.dumps({name: p.to_dict() for name, p in sorted(PRESETS.items())}))
