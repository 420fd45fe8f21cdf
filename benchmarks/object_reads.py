"""The worker's read of a recording from the archive bucket: boto3's get_object against the lean signed GET
the worker uses (spira_core.objects.SignedGet), CPU per read, alternated in one process on one core.

    python -m benchmarks.object_reads --work /tmp/spira-queue [--objects 32] [--rounds 4] [--core 0]

Brings up (or reuses) the private stack of benchmarks.queue under WORK/stack, stores --objects recordings
of 0.4–0.9 MB with the intake's credential, then reads each of them with the worker's, both ways, --rounds
times, and prints CPU and wall milliseconds per read; stops the stack after (unless --keep-stack).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks import common as C


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/spira-queue-bench"))
    parser.add_argument("--objects", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--keep-stack", action="store_true", help="leave the stack up afterwards")
    args = parser.parse_args()

    from benchmarks.queue import cpu_model
    from spira.stack import LocalStack, StackConfig
    from spira.stack.private import free_stack_ports
    from spira_core.objects import S3Recordings
    from spira_core.settings import cached_service_secret

    home = args.work / "stack"
    fresh = not (home / "stack.json").exists()
    stack = LocalStack(StackConfig.load(home, **(free_stack_ports() if fresh else {})), with_registry=False)
    info = stack.up(say=lambda *_: None)
    try:
        intake = S3Recordings(cached_service_secret(info.service_env("intake")))
        worker = S3Recordings(cached_service_secret(info.service_env("worker")))
        rng = np.random.default_rng(3)
        keys = []
        for i in range(args.objects):
            key = f"recordings/bench/read-{i:03d}"
            intake.put(key, rng.bytes(int(rng.uniform(0.4e6, 0.9e6))))
            keys.append(key)
        client, bucket = worker._client_for_current_secret()  # the boto3 client the worker used before
        ways = {
            "boto3 get_object": lambda k: client.get_object(Bucket=bucket, Key=k)["Body"].read(),
            "SignedGet": worker.get,
        }
        for read in ways.values():
            assert read(keys[0]) == ways["boto3 get_object"](keys[0])  # warm, and the same bytes
        os.sched_setaffinity(0, {args.core})
        cpu = {name: [] for name in ways}
        wall = {name: [] for name in ways}
        size = 0
        for _ in range(args.rounds):
            for name, read in ways.items():
                c0, t0 = time.process_time(), time.perf_counter()
                for key in keys:
                    size += len(read(key))
                cpu[name].append((time.process_time() - c0) / len(keys))
                wall[name].append((time.perf_counter() - t0) / len(keys))
        out = {
            "host": cpu_model(),
            "load1": round(C.load1(), 2),
            "mean_object_mb": round(size / (args.rounds * len(ways) * len(keys)) / 1e6, 2),
            **{
                name: {
                    "cpu_ms_per_read": round(1000 * float(np.median(cpu[name])), 2),
                    "wall_ms_per_read": round(1000 * float(np.median(wall[name])), 2),
                }
                for name in ways
            },
        }
        print(json.dumps(out, indent=2))
    finally:
        if not args.keep_stack:
            stack.down()


if __name__ == "__main__":
    main()
