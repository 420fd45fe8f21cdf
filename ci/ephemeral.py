"""The ephemeral test: the pushed image, BY DIGEST, in a fresh container against a throwaway stack.

Order: throwaway stack (its own OpenBao/SeaweedFS, so the container logs in to Vault the way it will in a
cluster) -> pull the digest from the registry -> run it read-only as uid 10001 with only the three VAULT_*
variables and a token file where the projected token goes -> /readyz -> the HTTP contract tests -> a
short gate (the loadtest image by digest when given) -> logs. The container and the stack are removed
whatever happens; the exit code and report.json tell the outcome.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ci.podman import Podman
from infra.vault import clients
from serving.archive import SPOOL_DIR

TOKEN_DIR = "/var/run/secrets/vault"
MODEL_PORT = 3000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ready(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def command_on_port(cmd: list[str], port: int) -> list[str]:
    """The image's own CMD with another --port: on the host network every container shares the port space,
    so a fixed 3000 would collide with a developer's server or a parallel test."""
    out = list(cmd)
    if "--port" not in out:
        raise ValueError(f"the image's CMD has no --port to move: {cmd}")
    out[out.index("--port") + 1] = str(port)
    if "--host" in out:
        out[out.index("--host") + 1] = "127.0.0.1"
    return out


@contextmanager
def throwaway_stack(say: Callable[[str], None] = print) -> Iterator:
    """A private OpenBao + SeaweedFS + MLflow on free ports, removed afterwards."""
    from spira.stack.private import throwaway_stack as private

    with private(with_registry=False, say=say) as (_, info):
        yield info


def write_token(directory: Path, token: str, ca: Path | None) -> Path:
    """The projected volume's stand-in, readable by the container's uid 10001: the token and, as the
    cluster projects the ConfigMap vault-ca beside it, Vault's CA (None: a pod without it)."""
    from spira_core.vault.settings import vault_ca_path

    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    path = directory / "token"
    path.write_text(token)
    path.chmod(0o644)
    if ca is not None:
        copied = vault_ca_path(path)
        copied.write_bytes(ca.read_bytes())
        copied.chmod(0o644)
    return path


@dataclass
class EphemeralReport:
    model_ref: str
    loadtest_ref: str | None
    model_version: str
    container: str
    port: int = 0
    ready_s: float | None = None
    contract_exit: int | None = None
    gate_exit: int | None = None
    total_s: float = 0.0
    error: str | None = None
    steps: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.error is None and self.contract_exit == 0 and self.gate_exit == 0


@dataclass(frozen=True)
class EphemeralOptions:
    model_ref: str  # registry/spira/model@sha256:...
    model_version: str
    loadtest_ref: str | None = None  # None: the gate from this checkout
    contract_tests: Path = Path("tests/contract")
    out_dir: Path = Path("build/ephemeral")
    ready_timeout_s: float = 180.0
    gate_duration_s: int = 10
    tls_verify: bool = False


# What every container of a test runs under, as the pods do (the restricted profile): read-only root, uid
# 10001, no capabilities, no privilege escalation; RESTRICTED adds the host network for the loopback services.
HARDENED = (
    "--read-only",
    "--user",
    "10001:10001",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
)
RESTRICTED = ("--network", "host", *HARDENED)


def model_run_args(
    name: str, port_cmd: list[str], image: str, vault_env: dict[str, str], token_dir: Path
) -> list[str]:
    """`podman run` as the Rollout runs the pod: read-only root, uid 10001, no capabilities, writable
    emptyDir-like tmpfs at /home/bentoml and /tmp, the token directory read-only, only VAULT_* in env."""
    args = [
        "run",
        "-d",
        "--name",
        name,
        *RESTRICTED,
        "--read-only-tmpfs=false",
        "--tmpfs",
        "/home/bentoml:rw,exec,mode=1777,size=2g",
        "--tmpfs",
        "/tmp:rw,exec,mode=1777,size=2g",
        "--tmpfs",  # the archive spool, where the pod mounts its volume (a tmpfs for one throwaway run)
        f"{SPOOL_DIR}:rw,mode=1777,size=1g",
        "-v",
        f"{token_dir}:{TOKEN_DIR}:ro",
        "--no-healthcheck",
        "--pull",
        "never",
    ]
    for key in ("VAULT_ADDR", "VAULT_ROLE", "VAULT_SECRET_PATH"):
        args += ["-e", f"{key}={vault_env[key]}"]
    return [*args, image, *port_cmd]


def run_ephemeral(
    podman: Podman, opts: EphemeralOptions, say: Callable[[str], None] = print
) -> EphemeralReport:
    start = time.monotonic()
    name = f"spira-ephemeral-{uuid.uuid4().hex[:10]}"
    report = EphemeralReport(opts.model_ref, opts.loadtest_ref, opts.model_version, name)
    out = opts.out_dir.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tls = f"--tls-verify={str(opts.tls_verify).lower()}"
    try:
        with throwaway_stack(say) as info, tempfile.TemporaryDirectory(prefix="spira-token-") as tmp:
            # From the registry, by digest: the bytes a cluster will pull, not whatever the local store has.
            podman("pull", "-q", tls, opts.model_ref, timeout=1800)
            report.steps.append("pulled by digest")
            token_dir = Path(tmp) / "vault"
            write_token(token_dir, info.service_jwt("serving", ttl_s=3600), ca=info.vault_ca)
            cmd = json.loads(
                podman.text("image", "inspect", "--format", "{{json .Config.Cmd}}", opts.model_ref)
            )
            report.port = free_port()
            podman(
                *model_run_args(
                    name,
                    command_on_port(cmd, report.port),
                    opts.model_ref,
                    info.service_env("serving"),
                    token_dir,
                )
            )
            report.steps.append(f"started {name} on port {report.port}")
            url = f"http://127.0.0.1:{report.port}"
            report.ready_s = wait_ready(podman, name, f"{url}/readyz", opts.ready_timeout_s, start)
            report.steps.append(f"ready in {report.ready_s:.1f}s")
            # The contract tests and the gate call /predict as the stack's gate client (its token from Vault)
            from spira.stack.predict_clients import client_env

            gate_client = client_env(info, "gate")
            report.contract_exit = run_contract_tests(
                url, opts.contract_tests, out, opts.model_version, gate_client
            )
            report.steps.append(f"contract tests exit {report.contract_exit}")
            gate_token = Path(tmp) / "gate-vault"
            write_token(
                gate_token, info.mint_jwt(clients.CLIENTS["gate"].subject, ttl_s=3600), ca=info.vault_ca
            )
            report.gate_exit = run_gate(podman, url, opts, out, tls, gate_client, gate_token)
            report.steps.append(f"gate exit {report.gate_exit}")
    except Exception as exc:  # every failure ends in the report, with the container's logs
        report.error = f"{type(exc).__name__}: {exc}"
    finally:
        collect_logs(podman, name, out)
        podman("rm", "-f", "--ignore", name, check=False)
        report.total_s = round(time.monotonic() - start, 1)
        (out / "report.json").write_text(
            json.dumps({**asdict(report), "passed": report.passed}, indent=2) + "\n"
        )
    return report


def wait_ready(podman: Podman, name: str, url: str, timeout_s: float, start: float) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if http_ready(url):
            return round(time.monotonic() - start, 1)
        state = podman.text("inspect", "--format", "{{.State.Status}}", name)
        if state not in {"running", "created", "configured"}:
            raise RuntimeError(f"container {name} is {state} before it became ready (see model.log)")
        time.sleep(1)
    raise TimeoutError(f"{url} was not ready within {timeout_s:.0f}s (see model.log)")


def run_contract_tests(
    url: str, tests: Path, out: Path, model_version: str | None = None, client: dict[str, str] | None = None
) -> int:
    """The same HTTP tests serving runs, pointed at the container, as `client` (tests/contract/client.py)."""
    if not tests.exists():
        raise FileNotFoundError(f"no contract tests at {tests}")
    env = {**os.environ, "SPIRA_CONTRACT_URL": url}
    if client:
        env["SPIRA_CONTRACT_CLIENT"] = json.dumps(client)
    if model_version:
        env["SPIRA_CONTRACT_MODEL_VERSION"] = model_version
    with (out / "contract.log").open("w") as log:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                str(tests),
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={out / 'contract.xml'}",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return proc.returncode


def run_gate(
    podman: Podman,
    url: str,
    opts: EphemeralOptions,
    out: Path,
    tls: str,
    client: dict[str, str],
    token_dir: Path,
) -> int:
    """The gate against the container: the loadtest image as the Job runs it (its two Vault variables and
    the projected token's stand-in at TOKEN_DIR), or the checkout's gate with the stack's signer."""
    gate_out = out / "gate"
    gate_out.mkdir(parents=True, exist_ok=True)
    gate_out.chmod(0o777)  # the gate container writes as uid 10001
    args = [
        "--url",
        url,
        "--thresholds",
        "local",
        "--expect-model-version",
        opts.model_version,
        "--duration",
        str(opts.gate_duration_s),
    ]
    with (out / "gate.log").open("w") as log:
        if opts.loadtest_ref:
            podman("pull", "-q", tls, opts.loadtest_ref, timeout=1800)
            proc = podman(
                "run",
                "--rm",
                *RESTRICTED,
                "--pull",
                "never",
                "--tmpfs",
                "/tmp:rw,mode=1777,size=256m",
                "-v",
                f"{gate_out}:/tmp/gate",
                "-v",
                f"{token_dir}:{TOKEN_DIR}:ro",
                "-e",
                f"VAULT_ADDR={client['VAULT_ADDR']}",
                "-e",
                f"VAULT_ROLE={client['VAULT_ROLE']}",
                opts.loadtest_ref,
                "spira",
                "gate",
                *args,
                "--out",
                "/tmp/gate",
                check=False,
                timeout=opts.gate_duration_s + 300,
            )
            log.write(
                (proc.stdout or b"").decode(errors="replace") + (proc.stderr or b"").decode(errors="replace")
            )
            return proc.returncode
        proc = subprocess.run(
            [sys.executable, "-m", "loadtests.gate", *args, "--out", str(gate_out)],
            env={**os.environ, **client},
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=opts.gate_duration_s + 300,
        )
        return proc.returncode


def collect_logs(podman: Podman, name: str, out: Path) -> None:
    logs = podman("logs", name, check=False)
    text = (logs.stdout or b"").decode(errors="replace") + (logs.stderr or b"").decode(errors="replace")
    (out / "model.log").write_text(text)
    inspect = podman("inspect", name, check=False)
    if inspect.returncode == 0:
        (out / "container.json").write_text(inspect.stdout.decode(errors="replace"))
