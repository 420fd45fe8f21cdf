"""The model card, Markdown and HTML, from the facts of one promotion. Pure: dicts in, text out, no I/O.

Facts: the model version, its dataset fingerprint, the code commit and the training parameters (from the
MLflow run), the image digest the promotion deploys, the clinical verdict on the frozen holdout (holdout
version and hash, metrics with their bootstrap intervals, the strata table), the test-set confusion
matrices, and the load gate's verdict; the gates' own reports travel in the bundle beside the card.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CardFacts:
    model_name: str
    version: str
    created_at: str
    image: str | None
    code_commit: str | None
    dataset_fingerprint: str | None
    run_id: str | None = None
    training_params: dict[str, str] = field(default_factory=dict)
    clinical: dict[str, Any] | None = None  # the clinical gate's verdict.json
    load_gate: dict[str, Any] | None = None  # the load gate's verdict.json
    confusion: dict[str, list[list[int]]] = field(default_factory=dict)  # condition -> [[TN, FP], [FN, TP]]
    reports: dict[str, str] = field(default_factory=dict)  # title -> file name inside the bundle


def _interval(value: dict[str, Any] | None, signed: bool = False) -> str:
    if not value or value.get("value") is None:
        return "n/a"
    fmt = "{:+.3f}" if signed else "{:.3f}"
    low = "?" if value.get("low") is None else fmt.format(value["low"])
    high = "?" if value.get("high") is None else fmt.format(value["high"])
    return f"{fmt.format(value['value'])} [{low}, {high}]"


def strata_rows(verdict: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The strata table of a clinical verdict: header, rows (cells as text)."""
    has_baseline = verdict.get("baseline") is not None
    metrics = list(verdict["strata"][0]["metrics"]) if verdict.get("strata") else []
    head = ["stratum", "n", "patients", "controls"]
    for m in metrics:
        head += [m] + ([f"{m} baseline", f"{m} Δ"] if has_baseline else [])
    head.append("result")
    rows = []
    for row in verdict.get("strata", []):
        cells = [str(row["stratum"]), str(row["n"]), str(row["patients"]), str(row["controls"])]
        for m in metrics:
            values = row["metrics"][m]
            cells.append(_interval(values.get("candidate")))
            if has_baseline:
                cells += [_interval(values.get("baseline")), _interval(values.get("difference"), signed=True)]
        cells.append(("PASS" if row["pass"] else "FAIL") if row["judged"] else f"reported ({row['reason']})")
        rows.append(cells)
    return head, rows


def _load_rows(load: dict[str, Any]) -> list[list[str]]:
    checks = (load.get("verdict") or {}).get("checks") or []
    rows = []
    for c in checks:
        measured = "n/a" if c.get("measured") is None else f"{c['measured']:g}"
        unit = c.get("unit") or ""
        rows.append(
            [
                c["slo"],
                f"{measured} {unit}".strip(),
                f"{c['comparison']} {c['threshold']:g} {unit}".strip(),
                "PASS" if c["passed"] else "FAIL",
            ]
        )
    return rows


def summary_rows(f: CardFacts) -> list[tuple[str, str]]:
    """The card's identity: what was promoted, from what, judged on what."""
    c = f.clinical or {}
    holdout = c.get("holdout") or {}
    load = f.load_gate or {}
    return [
        ("model", f"{f.model_name} version {f.version}"),
        ("image", f.image or "none (no image built)"),
        ("code commit", f.code_commit or "unknown"),
        ("dataset fingerprint", f.dataset_fingerprint or "unknown"),
        ("MLflow run", f.run_id or "unknown"),
        (
            "holdout",
            f"{holdout['version']} (sha256 {holdout['sha256']}; {holdout['n']} recordings, "
            f"{holdout['patients']} patients)"
            if holdout
            else "none",
        ),
        ("clinical gate", f"{c['verdict']} ({c.get('comparison', '')})" if c else "not run"),
        ("load gate", str(load.get("outcome", "not run")).upper() if load else "not run"),
        ("created", f.created_at),
    ]


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


def _confusion_rows(matrix: list[list[int]]) -> list[list[str]]:
    (tn, fp), (fn, tp) = matrix
    return [["control", str(tn), str(fp)], ["patient", str(fn), str(tp)]]


def render_markdown(f: CardFacts) -> str:
    lines = [f"# Model card: {f.model_name} v{f.version}", ""]
    lines += _md_table(["", ""], [[k, v] for k, v in summary_rows(f)])
    if f.clinical:
        lines += ["", "## Clinical gate on the frozen holdout", ""]
        lines += [f"Verdict **{f.clinical['verdict']}**; 95% bootstrap intervals in brackets."]
        lines += [f"- {r}" for r in f.clinical.get("reasons") or []]
        lines += ["", *_md_table(*strata_rows(f.clinical))]
    if f.confusion:
        lines += ["", "## Confusion matrix (test set, at the model's threshold)"]
        for condition, matrix in sorted(f.confusion.items()):
            lines += [
                "",
                f"{condition}:",
                "",
                *_md_table(["true \\ predicted", "control", "patient"], _confusion_rows(matrix)),
            ]
    if f.load_gate:
        lines += ["", "## Load gate", ""]
        lines += _md_table(["SLO", "measured", "threshold", "result"], _load_rows(f.load_gate))
    if f.training_params:
        lines += ["", "## Training parameters", ""]
        lines += _md_table(["parameter", "value"], [[k, v] for k, v in sorted(f.training_params.items())])
    if f.reports:
        lines += ["", "## Reports", ""] + [f"- [{t}]({name})" for t, name in sorted(f.reports.items())]
    return "\n".join(lines) + "\n"


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    out = "<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"
    for row in rows:
        out += "<tr>" + "".join(
            f'<td class="{e(c.split()[0].lower()) if c else ""}">{e(c)}</td>' for c in row
        )
        out += "</tr>"
    return out + "</table>"


def render_html(f: CardFacts) -> str:
    e = html.escape
    parts = [
        "<!doctype html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>Model card: {e(f.model_name)} v{e(f.version)}'
        "</title><style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;margin:1em 0}"
        " td,th{border:1px solid #ccc;padding:4px 8px} .pass{color:#1e8449;font-weight:bold}"
        " .fail{color:#c0392b;font-weight:bold}</style></head><body>",
        f"<h1>Model card: {e(f.model_name)} v{e(f.version)}</h1>",
        _html_table(["", ""], [[k, v] for k, v in summary_rows(f)]),
    ]
    if f.clinical:
        parts.append("<h2>Clinical gate on the frozen holdout</h2>")
        parts.append(
            f"<p>Verdict <b>{e(f.clinical['verdict'])}</b>; 95% bootstrap intervals in brackets.</p>"
        )
        reasons = f.clinical.get("reasons") or []
        if reasons:
            parts.append("<ul>" + "".join(f"<li>{e(r)}</li>" for r in reasons) + "</ul>")
        parts.append(_html_table(*strata_rows(f.clinical)))
    if f.confusion:
        parts.append("<h2>Confusion matrix (test set, at the model's threshold)</h2>")
        for condition, matrix in sorted(f.confusion.items()):
            parts.append(f"<h3>{e(condition)}</h3>")
            parts.append(_html_table(["true \\ predicted", "control", "patient"], _confusion_rows(matrix)))
    if f.load_gate:
        parts.append("<h2>Load gate</h2>")
        parts.append(_html_table(["SLO", "measured", "threshold", "result"], _load_rows(f.load_gate)))
    if f.training_params:
        parts.append("<h2>Training parameters</h2>")
        parts.append(
            _html_table(["parameter", "value"], [[k, v] for k, v in sorted(f.training_params.items())])
        )
    if f.reports:
        parts.append("<h2>Reports</h2><ul>")
        parts += [f'<li><a href="{e(name)}">{e(t)}</a></li>' for t, name in sorted(f.reports.items())]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
