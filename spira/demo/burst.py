"""The demo's burst: a hospital that was offline sends its recordings at once through the queue.

`spira intake` and two `spira worker`s of the version the pipeline just registered; the hospital's client
(`spira submit DIR --url URL`, then `spira submit --results`) sends real-shaped recordings and a few
malformed ones; the table shows each recording's answer (docs/queue.md).
"""

from __future__ import annotations

import json
import shutil

from rich.table import Table

from spira.demo.steps import SPIRA, DemoContext, StepFailed
from spira.queue_local import BurstPath, write_burst

RECORDINGS = 120
WORKERS = 2


def burst(ctx: DemoContext) -> None:
    version = str(ctx.facts["model_version"])
    work = ctx.home / "burst"
    shutil.rmtree(work, ignore_errors=True)
    folder = work / "hospital-offline"
    valid, bad = write_burst(folder, RECORDINGS, malformed_share=0.05, seconds=3.0, seed=ctx.synth_seed)
    ctx.console.print(
        f"  {len(valid)} recordings (16/44.1/48 kHz, mono and stereo) and {len(bad)} malformed uploads "
        f"kept by a hospital while offline, in {folder}"
    )
    path = BurstPath(ctx.stack, version, work / "logs")
    try:
        url = path.start_intake()
        ctx.console.print(f"  intake: {url} (pid {path.intake.pid}); model version {version}")
        for _ in range(WORKERS):
            path.start_worker(wait=False)
        journal = work / "journal.jsonl"
        env = ctx.env()
        ctx.run(
            [*SPIRA, "submit", str(folder), "--url", url, "--journal", str(journal), "--site", "clinic-a"],
            env=env,
        )
        out = _results(ctx, journal, env)
    finally:
        path.stop()
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    _table(ctx, lines)
    done = sum(line["status"] == "done" for line in lines)
    rejected = sum(line["status"] == "rejected" for line in lines)
    if done != len(valid) or rejected != len(bad):
        raise StepFailed(f"burst: {done} done of {len(valid)}, {rejected} rejected of {len(bad)}")
    ctx.facts["burst"] = f"{done} results through the queue, {rejected} malformed refused with a 4xx"


def _results(ctx: DemoContext, journal, env) -> str:
    """`spira submit --results` (exit 1 when some recording was refused, which the burst includes on purpose)."""
    import subprocess

    cmd = [*SPIRA, "submit", "--results", "--journal", str(journal), "--wait", "300"]
    ctx.console.print(f"[dim]$ spira submit --results --journal …/{journal.name}[/dim]")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode not in (0, 1):
        raise StepFailed(f"spira submit --results exited {out.returncode}\n{out.stderr[-2000:]}")
    return out.stdout


def _table(ctx: DemoContext, lines: list[dict]) -> None:
    table = Table(title="burst results (spira submit --results)")
    for col in ("recording", "status", "label", "probability", "windows", "rate in"):
        table.add_column(col)
    shown = [line for line in lines if line["status"] != "done"] + [
        line for line in lines if line["status"] == "done"
    ]
    for line in shown[:12]:
        result = line.get("result") or {}
        table.add_row(
            line["file"],
            line["status"] if line["status"] == "done" else f"{line['status']}: {line.get('error')}",
            str(result.get("label", "")),
            f"{result['probability']:.3f}" if "probability" in result else "",
            str(result.get("windows", "")),
            f"{result['sample_rate_in']} Hz" if "sample_rate_in" in result else "",
        )
    labels: dict[str, int] = {}
    for line in lines:
        key = (line.get("result") or {}).get("label") or line["status"]
        labels[key] = labels.get(key, 0) + 1
    table.caption = f"{len(lines)} recordings: " + ", ".join(f"{n} {k}" for k, n in sorted(labels.items()))
    ctx.console.print(table)
