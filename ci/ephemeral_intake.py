"""The intake image's ephemeral test: the pushed image, BY DIGEST, in a read-only container as uid 10001
against a throwaway stack (its OpenBao, SeaweedFS and NATS), with only the three VAULT_* variables and the
projected token's stand-in, as its Deployment runs it. Short: /readyz, an upload without a token is a 401,
a hospital's bad upload a 4xx, a hospital's recording a 202 whose job reads back, then the logs."""

from __future__ import annotations

import io
import json
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ci.ephemeral import RESTRICTED, TOKEN_DIR, command_on_port, free_port, wait_ready, write_token
from ci.podman import Podman

# what each check must answer: a 401 before the body is read, /predict's 415 for a file that is no audio
EXPECTED = {"no_token": 401, "bad_upload": 415, "recording": 202, "job": 200}


@dataclass
class IntakeReport:
    ref: str
    container: str
    ready_s: float | None = None
    checks: dict[str, int] = field(default_factory=dict)  # check -> HTTP status seen
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and self.checks == EXPECTED


def intake_run_args(
    name: str, cmd: list[str], image: str, vault_env: dict[str, str], token_dir: Path
) -> list[str]:
    args = ["run", "-d", "--name", name, *RESTRICTED, "--tmpfs", "/tmp:rw,mode=1777,size=64m"]
    args += ["-v", f"{token_dir}:{TOKEN_DIR}:ro", "--no-healthcheck", "--pull", "never"]
    for key in ("VAULT_ADDR", "VAULT_ROLE", "VAULT_SECRET_PATH"):
        args += ["-e", f"{key}={vault_env[key]}"]
    return [*args, image, *cmd]


def _wav(seconds: float = 2.0, rate: int = 16_000) -> bytes:
    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(
        buf, (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), rate, format="WAV", subtype="PCM_16"
    )
    return buf.getvalue()


def run_intake_checks(url: str, hospital: dict[str, str]) -> dict[str, int]:
    import requests

    post = f"{url}/v1/recordings"
    checks = {
        "no_token": requests.post(post, files={"audio": ("r.wav", _wav())}, timeout=30).status_code,
        "bad_upload": requests.post(
            post, files={"audio": ("r.pdf", b"%PDF-1.7 not audio")}, headers=hospital, timeout=30
        ).status_code,
    }
    accepted = requests.post(
        post,
        files={"audio": ("r.wav", _wav())},
        headers={**hospital, "Idempotency-Key": f"ephemeral-{uuid.uuid4().hex}"},
        timeout=30,
    )
    checks["recording"] = accepted.status_code
    if accepted.status_code == 202:
        checks["job"] = requests.get(
            url + accepted.json()["status_url"], headers=hospital, timeout=10
        ).status_code
    return checks


def run_intake_ephemeral(
    podman: Podman, ref: str, out_dir: Path, info=None, tls_verify: bool = False, ready_timeout_s: float = 120
) -> IntakeReport:
    """`info`: a running stack to use (the model's ephemeral test passes its own); None: a throwaway one."""
    from contextlib import nullcontext

    from ci.ephemeral import throwaway_stack
    from spira.stack.predict_clients import credential

    start = time.monotonic()
    name = f"spira-ephemeral-intake-{uuid.uuid4().hex[:10]}"
    report = IntakeReport(ref, name)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with (
            nullcontext(info) if info is not None else throwaway_stack(lambda _m: None) as stack,
            tempfile.TemporaryDirectory(prefix="spira-intake-token-") as tmp,
        ):
            podman("pull", "-q", f"--tls-verify={str(tls_verify).lower()}", ref, timeout=1800)
            token_dir = Path(tmp) / "vault"
            write_token(token_dir, stack.service_jwt("intake", ttl_s=3600), ca=stack.vault_ca)
            cmd = json.loads(podman.text("image", "inspect", "--format", "{{json .Config.Cmd}}", ref))
            port = free_port()
            podman(
                *intake_run_args(
                    name, command_on_port(cmd, port), ref, stack.service_env("intake"), token_dir
                )
            )
            url = f"http://127.0.0.1:{port}"
            report.ready_s = wait_ready(podman, name, f"{url}/readyz", ready_timeout_s, start)
            report.checks = run_intake_checks(url, credential(stack, "hospital").headers())
    except Exception as exc:  # every failure ends in the report, with the container's logs
        report.error = f"{type(exc).__name__}: {exc}"
    finally:
        logs = podman("logs", name, check=False)
        (out_dir / "intake.log").write_bytes((logs.stdout or b"") + (logs.stderr or b""))
        podman("rm", "-f", "--ignore", name, check=False)
        (out_dir / "intake-report.json").write_text(
            json.dumps({**asdict(report), "passed": report.passed}, indent=2) + "\n"
        )
    return report
