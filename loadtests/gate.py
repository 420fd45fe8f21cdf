"""The promotion gate: probe the candidate, run Locust headless against it, judge, write the verdict.

    python -m loadtests.gate --url http://127.0.0.1:3000 --thresholds local --out gate-report
    spira-gate ...            (the same, as installed in the loadtest image)
    spira gate ...            (the same, with a rich table, from the project CLI)

Exit status: 0 every SLO passed, 1 some SLO failed (the candidate must not be promoted), 2 the gate
could not run (bad thresholds file, bad URL, candidate unreachable or never ready, load generator
crashed). Argo Rollouts' AnalysisTemplate Job maps 0 to Successful and anything else to Failed.

Locust runs as a subprocess because it monkey-patches the process with gevent on import; this module
imports neither Locust nor gevent. The run is bounded three ways: --run-time, a request budget
(--max-requests, enforced in the locustfile) and a hard wall-clock timeout on the subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests import audio, credential, judge, probe, slo

PASS, FAIL, COULD_NOT_RUN = 0, 1, 2
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
PACKAGE_PARENT = Path(__file__).resolve().parent.parent
# Locust's startup (imports, corpus load) plus its own shutdown; past this the run is declared hung.
STARTUP_GRACE_S = 45.0

ARTIFACTS = {
    "verdict": "verdict.json",
    "html": "report.html",
    "csv_stats": "locust_stats.csv",
    "csv_failures": "locust_failures.csv",
    "csv_history": "locust_stats_history.csv",
    "stats_json": "locust_stats.json",
    "counters": "counters.json",
    "log": "locust.log",
}


def _option(flag: str, help: str, type: type | None = None) -> dict[str, Any]:
    """Field metadata of a command-line option: both command lines (`spira-gate`, `spira gate`) parse
    these with `parser()`, so an option, its type, default and help are declared here only."""
    return {"flag": flag, "help": help, "type": type}


@dataclass(frozen=True)
class GateConfig:
    url: str = field(metadata=_option("--url", "candidate base URL, e.g. http://spira-preview:3000"))
    thresholds: str | Path = field(
        default="local",
        metadata=_option(
            "--thresholds", "local, staging, production (packaged files) or a thresholds YAML path"
        ),
    )
    out_dir: Path = field(
        default=Path(".spira/gate"),
        metadata=_option("--out", "folder for the HTML report, CSV stats and verdict.json", Path),
    )
    # None: the thresholds file's load section decides
    users: int | None = field(
        default=None, metadata=_option("--users", "concurrent users (default: the thresholds file)", int)
    )
    spawn_rate: float | None = field(
        default=None,
        metadata=_option("--spawn-rate", "users started per second (default: the thresholds file)", float),
    )
    duration_s: float | None = field(
        default=None,
        metadata=_option("--duration", "run time in seconds (default: the thresholds file)", float),
    )
    max_requests: int | None = field(
        default=None,
        metadata=_option(
            "--max-requests", "stop after this many requests (default: the thresholds file)", int
        ),
    )
    expect_model_version: str | None = field(
        default=None,
        metadata=_option(
            "--expect-model-version",
            "model_version every answer must carry (default: read from /readyz or the first answer)",
        ),
    )
    ready_timeout_s: float = field(
        default=5.0, metadata=_option("--ready-timeout", "seconds to wait for GET /readyz 200", float)
    )
    corpus_dir: Path | None = field(
        default=None, metadata=_option("--corpus-dir", "cached WAV corpus folder (default: user cache)", Path)
    )
    probe_timeout_s: float = 30.0  # a candidate's first prediction may include model warm-up


OPTIONS = {f.name: f for f in fields(GateConfig) if "flag" in f.metadata}


@dataclass
class GateResult:
    exit_code: int
    url: str
    verdict: judge.Verdict | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    thresholds: slo.Thresholds | None = None
    load: slo.LoadShape | None = None
    expected_model_version: str | None = None
    expected_model_version_source: str | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""
    locust_wall_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        t = self.thresholds
        return {
            "exit_code": self.exit_code,
            "outcome": {PASS: "pass", FAIL: "fail"}.get(self.exit_code, "could-not-run"),
            "url": self.url,
            "error": self.error,
            "notes": self.notes,
            "environment": t.environment if t else None,
            "thresholds_file": t.source if t else None,
            "thresholds_schema_version": t.schema_version if t else None,
            "thresholds": slo.as_document(t) if t else None,
            "expected_model_version": self.expected_model_version,
            "expected_model_version_source": self.expected_model_version_source,
            "load": asdict(self.load) if self.load else None,
            "verdict": self.verdict.as_json() if self.verdict else None,
            "artifacts": self.artifacts,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "locust_wall_s": self.locust_wall_s,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _load_shape(config: GateConfig, t: slo.Thresholds) -> slo.LoadShape:
    """The file's load shape with the options given on the command line (same names) put over it."""
    names = [f.name for f in fields(slo.LoadShape) if f.name in OPTIONS]
    shape = replace(t.load, **{n: getattr(config, n) for n in names if getattr(config, n) is not None})
    for name in names:
        if getattr(shape, name) <= 0:
            raise ValueError(f"{OPTIONS[name].metadata['flag']} must be > 0, got {getattr(shape, name)}")
    return shape


def _locust_command(base_url: str, shape: slo.LoadShape, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--only-summary",
        "-H",
        base_url,
        "-u",
        str(shape.users),
        "-r",
        str(shape.spawn_rate),
        "--run-time",
        f"{max(1, round(shape.duration_s))}s",
        "--csv",
        str(out / "locust"),
        "--html",
        str(out / ARTIFACTS["html"]),
        "--json-file",
        str(out / "locust_stats"),  # Locust appends .json
        "--loglevel",
        "INFO",
        # the verdict decides pass/fail; Locust's exit code must only mean "it ran" (0) or "it broke"
        "--exit-code-on-error",
        "0",
        "PhoneApp",
    ]


def _run_locust(cmd: list[str], env: dict[str, str], log_path: Path, timeout_s: float) -> int:
    """Run Locust; on overrun ask it to stop (SIGTERM writes its stats), then kill it."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _could_not_run(result: GateResult, message: str) -> GateResult:
    result.exit_code, result.error = COULD_NOT_RUN, message
    return result


def run_gate(config: GateConfig) -> GateResult:
    """Everything the gate does, in order; never raises for a foreseeable problem (exit code 2)."""
    result = GateResult(exit_code=COULD_NOT_RUN, url=config.url, started_at=_now())
    try:
        result = _run(config, result)
    finally:
        result.finished_at = _now()
        _write_verdict(config.out_dir, result)
    return result


def _run(config: GateConfig, result: GateResult) -> GateResult:
    try:
        thresholds = slo.load(config.thresholds)
    except slo.ThresholdsError as exc:
        return _could_not_run(result, str(exc))
    result.thresholds = thresholds
    try:
        shape = _load_shape(config, thresholds)
        base_url = probe.check_url(config.url)
    except (ValueError, probe.ProbeError) as exc:
        return _could_not_run(result, str(exc))
    result.load = shape

    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACTS.values():  # never judge a previous run's files
        (out / name).unlink(missing_ok=True)

    try:
        ready = probe.wait_ready(base_url, config.ready_timeout_s)
    except probe.ProbeError as exc:
        return _could_not_run(result, f"server unreachable: {exc}")
    result.notes.append(f"{base_url}/readyz answered 200 after {ready.waited_s:.1f} s")

    try:
        credential.auth_headers()  # a gate that cannot log in says so now, not as a 100 % error rate
    except credential.CredentialUnavailable as exc:
        return _could_not_run(result, str(exc))

    try:
        clips = audio.ensure_corpus(config.corpus_dir or audio.default_cache_dir())
    except OSError as exc:
        return _could_not_run(result, f"cannot build the audio corpus: {exc}")

    expected, source = config.expect_model_version, "option --expect-model-version"
    if not expected and ready.body and isinstance(ready.body.get("model_version"), str):
        expected, source = ready.body["model_version"], "GET /readyz"
    if not expected:
        smallest = min(clips, key=lambda c: c.path.stat().st_size)
        try:
            expected = probe.first_answer_version(
                base_url, smallest.path.read_bytes(), config.probe_timeout_s
            )
        except probe.ProbeError as exc:
            return _could_not_run(result, str(exc))
        source = "the first valid answer (a probe upload)"
    result.expected_model_version, result.expected_model_version_source = expected, source
    if source != "option --expect-model-version":
        result.notes.append(
            f"expected model_version '{expected}' was read from {source}; "
            "pass --expect-model-version to pin it"
        )

    env = {
        **os.environ,
        # the locustfile imports loadtests.*; make that work from a checkout and from the image alike
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")])),
        "SPIRA_GATE_CORPUS_DIR": str(clips[0].path.parent),
        "SPIRA_GATE_COUNTERS_FILE": str(out / ARTIFACTS["counters"]),
        "SPIRA_GATE_EXPECT_MODEL_VERSION": expected,
        "SPIRA_GATE_INVALID_RATIO": str(shape.invalid_ratio),
        "SPIRA_GATE_MAX_REQUESTS": str(shape.max_requests),
    }
    cmd = _locust_command(base_url, shape, out)
    log_path = out / ARTIFACTS["log"]
    started = time.monotonic()
    try:
        rc = _run_locust(cmd, env, log_path, shape.duration_s + STARTUP_GRACE_S)
    except subprocess.TimeoutExpired:
        return _could_not_run(
            result,
            f"Locust did not stop within {shape.duration_s + STARTUP_GRACE_S:g} s;"
            f" log tail:\n{_tail(log_path)}",
        )
    except OSError as exc:
        return _could_not_run(result, f"cannot start Locust: {exc}")
    result.locust_wall_s = round(time.monotonic() - started, 2)

    try:
        raw_entries = json.loads((out / ARTIFACTS["stats_json"]).read_text())
        counters = json.loads((out / ARTIFACTS["counters"]).read_text())
    except (OSError, ValueError) as exc:
        return _could_not_run(
            result, f"Locust exited {rc} without its statistics ({exc}); log tail:\n{_tail(log_path)}"
        )
    if rc != 0:
        return _could_not_run(result, f"Locust exited {rc}; log tail:\n{_tail(log_path)}")

    verdict = judge.judge(raw_entries, counters, thresholds, ramp_up_s=shape.users / shape.spawn_rate)
    result.verdict = verdict
    result.exit_code = PASS if verdict.passed else FAIL
    if verdict.totals.get("stopped_by_max_requests"):
        result.notes.append(f"the run stopped at its request budget ({shape.max_requests} requests)")
    result.artifacts = {k: str(out / v) for k, v in ARTIFACTS.items() if (out / v).exists() or k == "verdict"}
    return result


def _write_verdict(out: Path, result: GateResult) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = out / ARTIFACTS["verdict"]
        result.artifacts.setdefault("verdict", str(path))
        path.write_text(json.dumps(result.as_json(), indent=2) + "\n")
    except OSError as exc:  # an unwritable out dir must not hide the verdict itself
        result.notes.append(f"could not write the verdict JSON: {exc}")


# --- plain-text rendering (the image has no rich; `spira gate` renders a rich table instead) -------


def _measured(check: judge.Check) -> str:
    if check.measured is None:
        return "-"
    if check.slo == "error_ratio":
        return f"{check.measured:.2%}"
    if check.unit == "req/s":
        return f"{check.measured:.1f} req/s"
    if check.unit == "ms":
        return f"{check.measured:.0f} ms"
    return f"{check.measured:.0f}"


def _threshold(check: judge.Check) -> str:
    if check.slo == "error_ratio":
        return f"{check.comparison} {check.threshold:.2%}"
    unit = f" {check.unit}" if check.unit in {"ms", "req/s"} else ""
    return f"{check.comparison} {check.threshold:g}{unit}"


def rows(result: GateResult) -> list[tuple[str, str, str, str, str]]:
    """(SLO, measured, threshold, PASS/FAIL, reason) for each check: both renderers use these."""
    if result.verdict is None:
        return []
    return [
        (c.slo, _measured(c), _threshold(c), "PASS" if c.passed else "FAIL", c.reason)
        for c in result.verdict.checks
    ]


def headline(result: GateResult) -> str:
    env = result.thresholds.environment if result.thresholds else "?"
    if result.exit_code == PASS:
        return f"GATE PASS ({env}): every SLO met by {result.url}"
    if result.exit_code == FAIL:
        failed = ", ".join(c.slo for c in result.verdict.failed()) if result.verdict else "?"
        return f"GATE FAIL ({env}): {failed} not met by {result.url}; do not promote"
    return f"GATE COULD NOT RUN: {result.error}"


def format_text(result: GateResult) -> str:
    lines = [headline(result)]
    table = rows(result)
    if table:
        widths = [
            max(len(r[i]) for r in [("SLO", "measured", "threshold", "result", ""), *table]) for i in range(4)
        ]
        header = ("SLO", "measured", "threshold", "result", "reason")
        for r in [header, *table]:
            lines.append("  ".join(col.ljust(w) for col, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    lines.extend(f"note: {n}" for n in result.notes)
    if result.artifacts:
        lines.append(f"report: {result.artifacts.get('html', '-')}  verdict: {result.artifacts['verdict']}")
    return "\n".join(lines)


def parser(prog: str = "spira-gate") -> argparse.ArgumentParser:
    """The gate's command line, from GateConfig's option fields (`spira gate` parses with it too)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    for name, f in OPTIONS.items():
        required = f.default is MISSING
        p.add_argument(
            f.metadata["flag"],
            dest=name,
            type=f.metadata["type"],
            required=required,
            default=None if required else f.default,
            help=f.metadata["help"] + ("" if required or f.default is None else f" (default: {f.default})"),
        )
    return p


def config_from_args(args: argparse.Namespace) -> GateConfig:
    return GateConfig(**{name: getattr(args, name) for name in OPTIONS})


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result = run_gate(config_from_args(args))
    print(format_text(result), flush=True)
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
