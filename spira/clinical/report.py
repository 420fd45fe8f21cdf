"""The clinical gate's HTML report: verdict, reasons, the per-stratum table and the ROC curves (inline SVG,
no plotting library: the gate image stays small and the report is one self-contained file)."""

from __future__ import annotations

import html
from typing import Any

COLOURS = {"candidate": "#c0392b", "baseline": "#2471a3"}


def _cell(interval: dict[str, Any] | None, signed: bool = False) -> str:
    if not interval or interval.get("value") is None:
        return "<td>n/a</td>"
    fmt = "{:+.3f}" if signed else "{:.3f}"
    low = "?" if interval["low"] is None else fmt.format(interval["low"])
    high = "?" if interval["high"] is None else fmt.format(interval["high"])
    return f"<td>{fmt.format(interval['value'])} <small>[{low}, {high}]</small></td>"


def roc_svg(curves: dict[str, list[list[float]]], size: int = 320) -> str:
    pad, inner = 36, size - 46
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" role="img" '
        'aria-label="ROC curves">',
        f'<rect x="{pad}" y="10" width="{inner}" height="{inner}" fill="none" stroke="#999"/>',
        f'<line x1="{pad}" y1="{10 + inner}" x2="{pad + inner}" y2="10" stroke="#ccc" stroke-dasharray="4"/>',
        f'<text x="{pad + inner / 2}" y="{size - 4}" text-anchor="middle" font-size="11">'
        "false-positive rate (1 − specificity)</text>",
        f'<text x="10" y="{10 + inner / 2}" font-size="11" transform="rotate(-90 10 {10 + inner / 2})" '
        'text-anchor="middle">sensitivity</text>',
    ]
    for i, (name, points) in enumerate(curves.items()):
        xy = " ".join(f"{pad + x * inner:.1f},{10 + (1 - y) * inner:.1f}" for x, y in points)
        colour = COLOURS.get(name, "#555")
        parts.append(f'<polyline points="{xy}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.append(
            f'<text x="{pad + inner - 4}" y="{10 + inner - 8 - 14 * i}" text-anchor="end" font-size="11" '
            f'fill="{colour}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def html_report(verdict: dict[str, Any]) -> str:
    e = html.escape
    v = verdict
    has_baseline = v["baseline"] is not None
    head = ["stratum", "n", "patients", "controls", "judged"]
    metrics = list(v["strata"][0]["metrics"])
    for m in metrics:
        head += [f"{m} candidate"] + ([f"{m} baseline", f"{m} Δ (margin)"] if has_baseline else [])
    head.append("result")
    rows = []
    for row in v["strata"]:
        cells = [f"<td>{e(row['stratum'])}</td>", f"<td>{row['n']}</td>"]
        cells += [f"<td>{row['patients']}</td>", f"<td>{row['controls']}</td>"]
        cells.append(f"<td>{'yes' if row['judged'] else e(row['reason'])}</td>")
        for m in metrics:
            values = row["metrics"][m]
            cells.append(_cell(values["candidate"]))
            if has_baseline:
                cells.append(_cell(values.get("baseline")))
                diff = _cell(values.get("difference"), signed=True)
                cells.append(diff.replace("</td>", f" <small>(−{values['margin']:g})</small></td>"))
        state = ("PASS" if row["pass"] else "FAIL") if row["judged"] else "reported"
        cells.append(f'<td class="{state.lower()}">{state}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    reasons = "".join(f"<li>{e(r)}</li>" for r in v["reasons"]) or "<li>none</li>"
    base = e(f"{v['baseline']['model_version']} ({v['baseline']['source']})") if has_baseline else "none"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SPIRA clinical gate: {e(v["verdict"])}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} td:first-child{{text-align:left}}
.pass{{color:#1e8449;font-weight:bold}} .fail{{color:#c0392b;font-weight:bold}} small{{color:#666}}</style>
</head><body>
<h1>Clinical gate: <span class="{e(v["verdict"].lower())}">{e(v["verdict"])}</span></h1>
<p>Holdout <b>{e(v["holdout"]["version"])}</b> (sha256 {e(v["holdout"]["sha256"])}; {v["holdout"]["n"]}
recordings, {v["holdout"]["patients"]} patients). Candidate <b>{e(v["candidate"]["model_version"])}</b>
({e(v["candidate"]["source"])}, threshold {v["candidate"]["threshold"]:g}); baseline {base}.
Margins and floors: {e(v["thresholds"]["environment"])} ({e(v["thresholds"]["source"])});
{e(v["comparison"])}; {v["bootstrap"]["samples"]} paired bootstrap samples, seed {v["bootstrap"]["seed"]},
{v["bootstrap"]["confidence"]:.0%} intervals.</p>
<h2>Reasons</h2><ul>{reasons}</ul>
<h2>Per stratum</h2>
<table><tr>{"".join(f"<th>{e(h)}</th>" for h in head)}</tr>{"".join(rows)}</table>
<h2>ROC curves (overall)</h2>{roc_svg(v["roc"])}
</body></html>
"""
