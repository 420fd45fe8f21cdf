"""`spira gate clinical`: score a frozen holdout over HTTP and judge the candidate against a baseline.

    spira gate clinical --url CANDIDATE_URL --holdout CSV_OR_S3 [--baseline-url URL] [--thresholds ENV]
                        [--out DIR]

Every holdout recording is POSTed to the candidate's /predict (and the baseline's, with --baseline-url);
the answers' probability and operating threshold are judged by spira_core.clinical. Without --baseline-url
the baseline is the champion's recorded result on the same holdout version (`recorded`, given by the
caller: MLflow from the project CLI). Exit 0 PASS, 1 FAIL, 2 could not run (a bad thresholds file or
holdout, a server unreachable or answering errors, no recorded result on this holdout version). `--out`
gets verdict.json and report.html. Standard library + numpy only (plus boto3 for an s3:// holdout): the
gate image runs this module as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.multipart import SYNTHETIC_HEADERS, encode_file_field
from spira_core.clinical import thresholds as clinical_thresholds
from spira_core.clinical.holdout import Holdout, HoldoutError
from spira_core.clinical.source import OpenHoldout, open_holdout
from spira_core.clinical.verdict import PASS, Scores, judge

PASS_CODE, FAIL_CODE, COULD_NOT_RUN = 0, 1, 2
BUSY = (429, 503)  # admission control: wait and retry, never judged


class ScoringError(RuntimeError):
    """A server could not score the holdout (unreachable, an error answer, a malformed one)."""


@dataclass(frozen=True)
class ClinicalConfig:
    url: str
    holdout: str
    baseline_url: str | None = None
    thresholds: str = "local"
    out_dir: Path | None = None
    timeout_s: float = 60.0
    concurrency: int = 4


@dataclass
class ClinicalResult:
    exit_code: int
    verdict: dict[str, Any] | None = None
    message: str = ""
    artifacts: dict[str, Path] = field(default_factory=dict)


def parser(prog: str = "spira gate clinical") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="candidate base URL, e.g. http://spira-preview:3000")
    p.add_argument("--holdout", required=True, help="frozen holdout: its dataset.csv, folder or s3:// URL")
    p.add_argument("--baseline-url", help="baseline base URL (default: the champion's recorded result)")
    p.add_argument("--thresholds", default="local", help="local, staging, production or a YAML path")
    p.add_argument("--out", type=Path, help="folder for verdict.json and report.html")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight per server (default 4)")
    return p


def config_from_args(args: argparse.Namespace) -> ClinicalConfig:
    return ClinicalConfig(
        args.url, args.holdout, args.baseline_url, args.thresholds, args.out, args.timeout, args.concurrency
    )


def _post(url: str, name: str, data: bytes, timeout_s: float, headers: dict[str, str]) -> dict[str, Any]:
    body, ctype = encode_file_field("audio", Path(name).name, "audio/wav", data)
    last = ""
    for attempt in range(6):
        request = urllib.request.Request(
            f"{url}/predict",
            data=body,
            method="POST",
            headers={"Content-Type": ctype, "Accept": "application/json", **SYNTHETIC_HEADERS, **headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as resp:
                answer = json.loads(resp.read())
            break
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:200]!r}"
            if exc.code not in BUSY:
                raise ScoringError(f"{url}/predict answered {last} for {name}") from exc
            time.sleep(float(exc.headers.get("Retry-After") or 0.5 * 2**attempt))
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
            raise ScoringError(f"{url}/predict failed for {name}: {getattr(exc, 'reason', exc)}") from exc
    else:
        raise ScoringError(f"{url}/predict stayed busy for {name} ({last})")
    prob, threshold = answer.get("probability"), answer.get("threshold")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (prob, threshold)):
        raise ScoringError(f"{url}/predict answered without a numeric probability and threshold for {name}")
    return answer


def score_over_http(
    url: str, opened: OpenHoldout, config: ClinicalConfig, headers: Callable[[], dict[str, str]]
) -> Scores:
    """Every holdout recording's probability from one server, in the holdout's order."""
    url = url.rstrip("/")
    items = opened.holdout.items

    def one(item) -> dict[str, Any]:
        return _post(url, item.file_path, opened.audio(item), config.timeout_s, headers())

    with ThreadPoolExecutor(max_workers=max(1, config.concurrency)) as pool:
        answers = list(pool.map(one, items))
    thresholds = {float(a["threshold"]) for a in answers}
    versions = {str(a.get("model_version", "")) for a in answers}
    if len(thresholds) != 1 or len(versions) != 1:
        raise ScoringError(
            f"{url} answered with {len(versions)} model versions and {len(thresholds)} thresholds: "
            "it changed while being scored"
        )
    return Scores(versions.pop(), thresholds.pop(), tuple(float(a["probability"]) for a in answers), url)


def predict_role(env: Mapping[str, str]) -> str | None:
    """The client role for /predict: VAULT_PREDICT_ROLE; VAULT_ROLE only when it reads no secret (with
    VAULT_SECRET_PATH it is the Job's workload role, which reads the holdout's key: holdout_access)."""
    if env.get("VAULT_PREDICT_ROLE"):
        return env["VAULT_PREDICT_ROLE"]
    return None if env.get("VAULT_SECRET_PATH") else env.get("VAULT_ROLE") or None


def credential_headers() -> Callable[[], dict[str, str]]:
    """The client credential for /predict when the environment names a client role (the gate Job's own
    variables, spira_core/predict_credential.py), else no header."""
    role = predict_role(os.environ)
    if not role:
        return dict
    from spira_core.predict_credential import CredentialError, PredictCredential

    credential = PredictCredential.from_env(role=role)

    def headers() -> dict[str, str]:
        try:
            return credential.headers()
        except CredentialError as exc:
            raise ScoringError(f"no credential for /predict: {exc}") from exc

    return headers


def no_recorded_baseline(_: Holdout) -> Scores | None:
    raise ScoringError(
        "without --baseline-url the baseline is the champion's recorded result, which this image cannot "
        "read: pass --baseline-url (the active Service), or run 'spira gate clinical' from the project CLI"
    )


def run_clinical(
    config: ClinicalConfig,
    recorded: Callable[[Holdout], Scores | None] = no_recorded_baseline,
    headers: Callable[[], dict[str, str]] = dict,
) -> ClinicalResult:
    """Score, judge, write the verdict and the report. `recorded(holdout)`: the champion's result on this
    holdout version, None when there is no champion yet (the floors alone judge)."""
    try:
        thresholds = clinical_thresholds.load(config.thresholds)
        opened = open_holdout(config.holdout)
        # the recorded baseline first: a missing one stops the gate before any request
        baseline = None if config.baseline_url else recorded(opened.holdout)
        candidate = score_over_http(config.url, opened, config, headers)
        if config.baseline_url:
            baseline = score_over_http(config.baseline_url, opened, config, headers)
    except (clinical_thresholds.ClinicalThresholdsError, HoldoutError, ScoringError, ValueError) as exc:
        return ClinicalResult(COULD_NOT_RUN, message=str(exc))
    verdict = judge(opened.holdout, candidate, baseline, thresholds)
    verdict["holdout"]["ref"] = config.holdout
    result = ClinicalResult(PASS_CODE if verdict["verdict"] == PASS else FAIL_CODE, verdict)
    if config.out_dir is not None:
        from spira.clinical.report import html_report

        config.out_dir.mkdir(parents=True, exist_ok=True)
        result.artifacts["verdict"] = config.out_dir / "verdict.json"
        result.artifacts["verdict"].write_text(json.dumps(verdict, indent=2, sort_keys=True) + "\n")
        result.artifacts["html"] = config.out_dir / "report.html"
        result.artifacts["html"].write_text(html_report(verdict))
    return result


def format_text(result: ClinicalResult) -> str:
    if result.verdict is None:
        return f"clinical gate: COULD NOT RUN: {result.message}"
    v = result.verdict
    base = v["baseline"]["model_version"] if v["baseline"] else "none (floors only)"
    lines = [
        f"clinical gate: {v['verdict']} on holdout {v['holdout']['version']} ({v['holdout']['n']} recordings, "
        f"{v['thresholds']['environment']} margins): candidate {v['candidate']['model_version']} vs {base}"
    ]
    for row in v["strata"]:
        cells = []
        for m, values in row["metrics"].items():
            c = values["candidate"]
            diff = values.get("difference")
            cells.append(
                f"{m} {c['value']:.3f} [{c['low']:.3f}, {c['high']:.3f}]"
                + (f" Δ {diff['value']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}]" if diff else "")
                if c["value"] is not None
                else f"{m} n/a"
            )
        state = ("pass" if row["pass"] else "FAIL") if row["judged"] else "not judged"
        lines.append(f"  {row['stratum']:<20} n={row['n']:<4} {state:<10} " + "; ".join(cells))
    lines.extend(f"  reason: {r}" for r in v["reasons"])
    lines.extend(f"  {name}: {path}" for name, path in result.artifacts.items())
    return "\n".join(lines)


def holdout_key(config: ClinicalConfig) -> str | None:
    """In the Job (the workload contract in its environment), its own object-store key for an s3://
    holdout, exported as the AWS variables; a message when it cannot be read."""
    if not config.holdout.startswith("s3://"):
        return None
    from spira.clinical.holdout_access import HoldoutAccessError, has_secret, holdout_variables

    if not has_secret(os.environ):
        return None
    try:
        os.environ.update(holdout_variables(os.environ))
    except (HoldoutAccessError, KeyError) as exc:
        return f"no key for the holdout: {exc}"
    return None


def main(
    argv: list[str] | None = None,
    recorded: Callable[[Holdout], Scores | None] = no_recorded_baseline,
    headers: Callable[[], dict[str, str]] | None = None,
) -> int:
    config = config_from_args(parser().parse_args(argv))
    problem = holdout_key(config)
    if problem:
        print(format_text(ClinicalResult(COULD_NOT_RUN, message=problem)), flush=True)
        return COULD_NOT_RUN
    result = run_clinical(config, recorded, headers or credential_headers())
    print(format_text(result), flush=True)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
