"""`spira data`: make a synthetic SPIRA-like dataset, check a dataset CSV.

Thin entry points: parse options, call training.data, render tables with rich.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Datasets: synthetic SPIRA-like data, CSV checks."
)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Folder for clips/, noise/, dataset.csv and noise.csv."),
    n: int = typer.Option(240, "--n", min=2, help="Number of recordings (about half patients)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, byte-identical files."),
    n_noise: int = typer.Option(16, "--n-noise", min=0, help="Number of hospital noise clips."),
    syllable_fraction: float = typer.Option(
        0.25,
        "--syllable-fraction",
        min=0.0,
        max=1.0,
        help="Share of syllable trains instead of sustained /a/.",
    ),
) -> None:
    """Synthesize a SPIRA-like dataset from a source-filter voice model with respiratory-insufficiency markers."""
    from training.data.synth import SynthParams, synthesize
    from training.data.synth.build import CLIPS_DIR

    params = SynthParams(n=n, seed=seed, n_noise=n_noise, syllable_fraction=syllable_fraction)
    console = Console()
    started = time.perf_counter()
    with _progress(console) as progress:
        task = progress.add_task("synthesizing", total=params.n + params.n_noise)

        def advance(name: str) -> None:
            progress.update(task, advance=1, description=f"synthesizing {name.split('/')[0]:>5}")

        result = synthesize(params, out, on_clip=advance)
    elapsed = time.perf_counter() - started

    table = Table(title=f"Synthetic SPIRA-like dataset (seed {seed}) in {out}")
    table.add_column("class")
    for column in ("n", "severity", "HNR dB", "jitter %", "shimmer %", "level dB", "pauses", "dur s"):
        table.add_column(column, justify="right")
    for label, name in ((0, "control"), (1, "patient")):
        clips = [c for c in result.clips if c.label == label]
        paused = sum(c.breath_group_s < c.duration_s - c.lead_s - c.tail_s for c in clips)
        table.add_row(
            name,
            str(len(clips)),
            f"{_mean([c.severity for c in clips]):.2f}",
            f"{_mean([c.hnr_db for c in clips]):.1f}",
            f"{100 * _mean([c.jitter for c in clips]):.2f}",
            f"{100 * _mean([c.shimmer for c in clips]):.1f}",
            f"{_mean([c.level_db for c in clips]):+.1f}",
            f"{paused}/{len(clips)}",
            f"{_mean([c.duration_s for c in clips]):.2f}",
        )
    console.print(table)
    rates = Counter((c.sample_rate, c.channels) for c in result.clips)
    kinds = Counter(s.kind for s in result.noises)
    console.print(
        "recording conditions: "
        + ", ".join(
            f"{sr} Hz {'stereo' if ch == 2 else 'mono'}: {k}" for (sr, ch), k in sorted(rates.items())
        )
    )
    console.print(
        "noise clips: " + (", ".join(f"{kind}: {k}" for kind, k in sorted(kinds.items())) or "none")
    )
    console.print(
        f"wrote {len(result.clips)} clips under {out / CLIPS_DIR}, {result.dataset_csv}, {result.noise_csv} in {elapsed:.1f} s"
    )


@app.command()
def check(
    data: Path = typer.Option(..., "--data", help="Dataset CSV (file_path,class)."),
    noise: Path | None = typer.Option(None, "--noise", help="Noise CSV (file_path) to validate as well."),
    max_bad: int = typer.Option(20, "--max-bad", min=1, help="How many bad files to list."),
) -> None:
    """Load and validate a dataset CSV, decode every file, print counts, durations, rates and bad files."""
    from training.data import DatasetError, dataset_fingerprint, load_dataset_csv, load_noise_csv
    from training.data.audit import audit_examples
    from training.data.dataset import LABELS

    console = Console()
    try:
        examples = load_dataset_csv(data)
        noises = load_noise_csv(noise) if noise is not None else None
    except DatasetError as exc:
        console.print(f"[red]invalid dataset[/red]\n{exc}", highlight=False)
        raise SystemExit(1) from exc  # see below: SystemExit works under the click root

    with _progress(console) as progress:
        task = progress.add_task("decoding", total=len(examples))
        audit = audit_examples(examples, on_file=lambda _: progress.advance(task))

    table = Table(title=f"Dataset {data}")
    table.add_column("class")
    for column in ("rows", "readable", "bad", "min s", "mean s", "max s", "total min"):
        table.add_column(column, justify="right")
    for label, name in LABELS.items():
        durations = [i.duration_s for i in audit.good if i.label == label]
        rows = sum(e.label == label for e in examples)
        bad = sum(b.label == label for b in audit.bad)
        table.add_row(
            f"{label} {name}",
            str(rows),
            str(len(durations)),
            str(bad),
            f"{min(durations):.2f}" if durations else "-",
            f"{_mean(durations):.2f}" if durations else "-",
            f"{max(durations):.2f}" if durations else "-",
            f"{sum(durations) / 60:.1f}",
        )
    console.print(table)

    formats = Table(title="Sample rates and channels")
    formats.add_column("sample rate", justify="right")
    formats.add_column("channels", justify="right")
    formats.add_column("files", justify="right")
    for (rate, channels), count in sorted(Counter((i.sample_rate, i.channels) for i in audit.good).items()):
        formats.add_row(str(rate), str(channels), str(count))
    console.print(formats)

    if audit.bad:
        bad_table = Table(title=f"Bad files: {len(audit.bad)} (excluded by the pipeline)", style="red")
        bad_table.add_column("file")
        bad_table.add_column("class", justify="right")
        bad_table.add_column("reason")
        for bad in audit.bad[:max_bad]:
            bad_table.add_row(str(bad.path), str(bad.label), bad.reason)
        console.print(bad_table)
    if noises is not None:
        console.print(f"noise CSV {noise}: {len(noises)} clips, all present")
    console.print(f"dataset fingerprint: {dataset_fingerprint(examples)}")
    if audit.bad:
        # SystemExit, not typer.Exit: typer 0.29 vendors its own click, so the click root of `spira`
        # does not recognise typer.Exit and would print a traceback
        raise SystemExit(1)
