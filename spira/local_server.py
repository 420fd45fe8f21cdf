"""`bentoml serve` of the model service on this machine: import a pinned version, start, wait, stop.

One implementation for the demo, the test fixtures and the benchmarks. A server gets its own BentoML
home (`private_home`: the model store linked from the home it was imported into, its Prometheus
multiprocess folder its own, since BentoML empties that folder at start-up) and its own pin file; the
process runs in its own process group so stopping it stops its workers too. A server that archives
(VAULT_ADDR set) gets the archive's uploader beside it (`python -m serving.uploader`, the pod's sidecar):
started first, stopped last, so it drains what the server spooled.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from serving.archive import UPLOADER_MODULE
from spira.stack.net import free_port, http_status
from spira.stack.process import ManagedProcess

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 180
MODEL_SERVICE = "serving.service:Spira"
# the uploader's SIGTERM drain (archive_drain_s, 20 s by default) and the item in progress, with a margin
UPLOADER_GRACE_S = 60


class LocalServerError(RuntimeError):
    pass


@dataclass
class LocalServer:
    url: str
    process: ManagedProcess
    env: dict[str, str]
    stack_home: Path | None = None  # registered there as a serving consumer (spira.stack.consumers)
    uploader: ManagedProcess | None = None  # the archive's uploader (serving/uploader.py)

    @property
    def pid(self) -> int:
        pid = self.process.pid()
        if pid is None:
            raise LocalServerError(f"the server at {self.url} is not running")
        return pid

    @property
    def log(self) -> Path:
        return self.process.log_path

    def stop(self) -> None:
        """The server first (its last requests spooled), then the uploader (SIGTERM: it drains)."""
        self.process.stop()
        if self.uploader is not None:
            self.uploader.stop()
        if self.stack_home is not None:
            from spira.stack.consumers import unregister

            unregister(self.stack_home, "serving", self.process.name)
            _stack_prometheus(self.stack_home).remove_target(self.process.name)


def _stack_prometheus(stack_home: Path):
    from spira.stack.config import StackConfig
    from spira.stack.prometheus import PrometheusService

    return PrometheusService(StackConfig.load(stack_home))


def scrape_in_stack(stack_home: Path, name: str, url: str) -> None:
    """Have the stack's Prometheus scrape this server, labelled as a model pod of the local environment
    would be (namespace `local`, pod `spira-model-<name>`)."""
    labels = {"namespace": "local", "pod": f"spira-model-{name}"}
    _stack_prometheus(stack_home).add_target(name, url.removeprefix("http://"), labels)


def server_env(bentoml_home: Path, pin_file: Path, **extra: str) -> dict[str, str]:
    """The environment of a local server: this checkout importable, a private BentoML home, the pin."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "BENTOML_HOME": str(bentoml_home),
        "SPIRA_MODEL_PIN": str(pin_file),
        **extra,
    }


def run_spira(args: list[str], env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess:
    """`spira ARGS` in a child process of this checkout; LocalServerError with the output's tail if it
    fails (a command that imports BentoML must run apart: BentoML reads BENTOML_HOME once, at import)."""
    out = subprocess.run(
        [sys.executable, "-m", "spira.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if out.returncode != 0:
        raise LocalServerError(
            f"spira {' '.join(args[:2])} failed ({out.returncode}):\n{(out.stdout + out.stderr)[-3000:]}"
        )
    return out


def import_pinned(
    tracking_uri: str, version: str, pin_file: Path, bentoml_home: Path, timeout_s: int = 300
) -> None:
    """`spira bento import` of one MLflow version into `bentoml_home`, its pin written to `pin_file`."""
    args = [
        "bento",
        "import",
        "--model",
        version,
        "--tracking-uri",
        tracking_uri,
        "--pin-file",
        str(pin_file),
    ]
    run_spira(args, server_env(bentoml_home, pin_file), timeout_s)


def start_local_server(
    env: dict[str, str],
    run_dir: Path,
    port: int | None = None,
    name: str = "serve",
    ready_timeout_s: float = READY_TIMEOUT_S,
    wait_path: str = "/readyz",
    service: str = MODEL_SERVICE,
    stack_home: Path | None = None,
    https_ca: Path | None = None,
    uploader: bool | None = None,
) -> LocalServer:
    """Start `bentoml serve <service>` on 127.0.0.1 and wait until `wait_path` answers 200 (/livez: up,
    ready or not, for a test of a server that must not become ready; another service: a benchmark's).
    With `stack_home`, the server is registered in that local stack as a consumer of serving's secret
    (`spira secrets rotate --env local` waits for its version gauge) and a target of its Prometheus, from
    its start until `stop`. With `https_ca`, the server listens with TLS (its env carries the certificate,
    spira_core.tls.bentoml_ssl_options) and is polled over https trusting only that CA. The archive's
    uploader starts with the model service when it archives (`uploader` None: VAULT_ADDR in `env`)."""
    port = port or free_port()
    if uploader is None:
        uploader = service == MODEL_SERVICE and bool(env.get("VAULT_ADDR"))
    uploading = start_uploader(env, run_dir, f"{name}-{port}-uploader") if uploader else None
    bentoml = str(Path(sys.executable).parent / "bentoml")
    serve_env = env
    if env.get("BENTOML_HOME"):  # two servers of one home would share (and wipe) their metrics' files
        home = private_home(Path(env["BENTOML_HOME"]), run_dir / f"{name}-{port}-bentoml")
        serve_env = {**env, "BENTOML_HOME": str(home)}
    proc = ManagedProcess(
        f"{name}-{port}",
        [bentoml, "serve", service, "--port", str(port), "--host", "127.0.0.1"],
        run_dir,
        env=serve_env,
        grace_s=15,
        cwd=REPO,
    )
    proc.start()
    scheme = "https" if https_ca is not None else "http"
    server = LocalServer(f"{scheme}://127.0.0.1:{port}", proc, env, stack_home, uploading)
    if stack_home is not None:
        from spira.stack.consumers import Registration, register

        register(
            stack_home,
            Registration("serving", proc.name, proc.pid() or 0, proc.argv[0], f"{server.url}/metrics"),
        )
        scrape_in_stack(stack_home, proc.name, server.url)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if uploading is not None and uploading.exited_early():
            server.stop()
            raise LocalServerError(
                f"the archive uploader {uploading.describe_exit()} during start-up:\n{uploading.log_tail(40)}"
            )
        if proc.exited_early():
            server.stop()
            raise LocalServerError(
                f"bentoml serve {proc.describe_exit()} during start-up:\n{proc.log_tail(40)}"
            )
        if http_status(f"{server.url}{wait_path}", ca=https_ca) == 200:
            return server
        time.sleep(0.5)
    server.stop()
    raise LocalServerError(f"bentoml serve not ready within {ready_timeout_s:.0f} s:\n{proc.log_tail(40)}")


# what a server's own BentoML home does not share with the home its model was imported into: BentoML empties
# the Prometheus multiprocess folder at start-up (a second server sharing it would wipe the first's series,
# and each would then export the other's), and its scratch folder
_PER_SERVER = frozenset({"prometheus_multiproc_dir", "tmp"})


def private_home(shared: Path, home: Path) -> Path:
    """A BentoML home of one server's own at `home`: the entries of `shared` (the model store, bentos)
    linked, its Prometheus multiprocess and scratch folders its own."""
    home.mkdir(parents=True, exist_ok=True)
    shared.mkdir(parents=True, exist_ok=True)
    for entry in shared.iterdir():
        link = home / entry.name
        if entry.name not in _PER_SERVER and not link.is_symlink() and not link.exists():
            link.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    return home


def start_uploader(env: dict[str, str], run_dir: Path, name: str) -> ManagedProcess:
    """`python -m serving.uploader` with the server's environment (its Vault login, spool and HOSTNAME),
    in a process group of its own; `stop` sends SIGTERM and gives it UPLOADER_GRACE_S to drain."""
    proc = ManagedProcess(
        name, [sys.executable, "-m", UPLOADER_MODULE], run_dir, env=env, grace_s=UPLOADER_GRACE_S, cwd=REPO
    )
    proc.start()
    return proc
