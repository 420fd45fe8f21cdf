"""Time per step of the played workflow beside `spira pipeline run`: the cost of one container per stage.

    python -m benchmarks.workflow_play --n 24 --seed 2020 --preset fast --epochs 4

Starts a throwaway local stack (with its registry), synthesizes the dataset, builds and pushes the training
image, then on the same inputs:
1. `spira workflow play` (every stage computed, each in its own container),
2. the play again (every stage reused: what a container costs when its stage has nothing to do),
3. `spira pipeline run` in this process's checkout, in a fresh bucket (every stage computed in one process).
Prints one JSON document: seconds per step of each, the image build, the host (its processor) and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _played(result) -> dict[str, dict]:
    return {
        s.name: {"seconds": round(s.seconds, 1), "reused": s.reused}
        for s in result.steps
        if s.status == "succeeded"
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args(argv)

    from benchmarks.model import host
    from ci.podman import Podman, PodmanConfig
    from spira.secrets.seed import read_secret
    from spira.stack.private import throwaway_stack
    from spira.workflow.play_cli import run_play, training_image
    from training.data.synth import SynthParams, synthesize

    figures: dict = {
        "host": platform.node(),
        "cpu": host()["model"],  # build hosts differ (NOTES): compare within one run only
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "inputs": vars(args),
    }
    with (
        tempfile.TemporaryDirectory(prefix="spira-bench-play-") as tmp,
        throwaway_stack(with_registry=True) as (
            _,
            info,
        ),
    ):
        os.environ.update(info.mlflow_operator_env())
        data = synthesize(SynthParams(n=args.n, seed=args.seed), Path(tmp) / "data")
        start = time.monotonic()
        image = training_image(Podman(PodmanConfig.at()), info.registry, say=lambda _m: None)
        figures["image_build_push_s"] = round(time.monotonic() - start, 1)
        for label in ("play_computed", "play_reused"):
            start = time.monotonic()
            result, _ = run_play(
                data.dataset_csv, data.noise_csv, args.preset, args.epochs, image, str(info.home)
            )
            if result.failed is not None:
                raise SystemExit(f"{label}: step {result.failed.name} failed:\n{result.failed.detail}")
            figures[label] = {"total_s": round(time.monotonic() - start, 1), "steps": _played(result)}
        settings = Path(tmp) / "settings.json"
        secret = read_secret(info.vault_client(), "local", "training")
        bucket = f"bench-play-{uuid.uuid4().hex[:8]}"
        s3 = {"s3_access_key": info.s3_access_key, "s3_secret_key": info.s3_secret_key}
        settings.write_text(json.dumps({**secret, **s3, "features_bucket": bucket}))
        outcome = Path(tmp) / "outcome.json"
        start = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "spira.cli",
                "pipeline",
                "run",
                "--data",
                str(data.dataset_csv),
                "--noise",
                str(data.noise_csv),
                "--preset",
                args.preset,
                "--epochs",
                str(args.epochs),
                "--settings",
                str(settings),
                "--no-progress",
                "--json-out",
                str(outcome),
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=True,
            capture_output=True,
        )
        stages = json.loads(outcome.read_text())["stages"]
        figures["pipeline_run"] = {
            "total_s": round(time.monotonic() - start, 1),
            "steps": {
                s["stage"]: {"seconds": round(s["seconds"], 1), "reused": s["skipped"]} for s in stages
            },
        }
    figures["load_after"] = os.getloadavg()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
