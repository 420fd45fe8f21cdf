"""Bring the local stack up (idempotently, rolling back on failure), down, and report its status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from infra.vault import layout
from spira.secrets.mlflow_users import MlflowUserAdmin, seed_mlflow_users
from spira.secrets.objectstore import IamObjectStoreAdmin
from spira.secrets.seed import EnvironmentEndpoints, read_secret, seed
from spira.secrets.store import SecretsError
from spira.stack.config import StackConfig
from spira.stack.errors import StackError
from spira.stack.info import StackInfo
from spira.stack.mlflow_server import MlflowService
from spira.stack.nats import NatsService
from spira.stack.net import port_in_use, wait_until
from spira.stack.process import ManagedProcess
from spira.stack.prometheus import PrometheusService
from spira.stack.registry import RegistryService, registry_available
from spira.stack.seaweed import SeaweedService
from spira.stack.signer import LocalJwtSigner
from spira.stack.vault import OpenBaoService

ENV = "local"
STARTUP_TIMEOUT_S = {
    "openbao": 30,
    "seaweedfs": 60,
    "mlflow": 120,
    "registry": 20,
    "nats": 20,
    "prometheus": 30,
}


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    ports: list[int]
    pid: int | None
    health: str  # healthy | unhealthy | stopped | not installed


class LocalStack:
    def __init__(self, cfg: StackConfig, with_registry: bool | None = None) -> None:
        self.cfg = cfg
        self.vault = OpenBaoService(cfg)
        self.s3 = SeaweedService(cfg)
        self.mlflow = MlflowService(cfg)
        self.registry = RegistryService(cfg)
        self.nats = NatsService(cfg)
        self.prometheus = PrometheusService(cfg)
        self.with_registry = registry_available() if with_registry is None else with_registry
        self.signer = LocalJwtSigner.of_stack(cfg.home)

    # -- up ----------------------------------------------------------------------------------------
    def up(self, say: Callable[[str], None] = lambda _m: None) -> StackInfo:
        started: list[ManagedProcess] = []
        try:
            self.cfg.home.mkdir(parents=True, exist_ok=True)
            self.cfg.save()
            self.signer.ensure()

            self._start(self.vault, self.vault.process(), started, say, self.vault.write_config)
            self.vault.init_and_unseal()
            self.vault.bootstrap(self.signer, ENV)

            self._start(self.s3, self.s3.process(), started, say, self.s3.write_config)
            self.s3.bootstrap()
            self._start(self.nats, self.nats.process(), started, say, self.nats.write_config)

            info = self._info()
            self._seed(info)
            secret = read_secret(info.operator_client(), ENV, "mlflow")
            self.mlflow.write_config()  # before its process: that carries the auth app's secret key
            self._start(self.mlflow, self.mlflow.process(secret), started, say)
            self._seed_mlflow(info)
            self._start(
                self.prometheus, self.prometheus.process(), started, say, self.prometheus.write_config
            )
            if self.with_registry:
                self._start(self.registry, self.registry.process(), started, say, self.registry.write_config)
            return self._info()
        except BaseException:
            for proc in reversed(started):
                proc.stop()
            raise

    def _start(self, svc, proc: ManagedProcess, started: list, say, prepare=None) -> None:
        if proc.alive() and svc.answering():
            say(f"{svc.name}: already running (pid {proc.pid()})")
            return
        proc.stop()  # a stale pid file or a half-dead process of ours
        busy = [p for p in svc.ports() if port_in_use(p)]
        if busy:
            raise StackError(
                svc.name,
                f"port {busy[0]} is already in use by another process",
                "stop it or choose other ports (SPIRA_*_PORT, or `spira stack up --help`)",
            )
        if prepare is not None:
            prepare()
        timeout = STARTUP_TIMEOUT_S[svc.name]
        for attempt in (1, 2):
            proc.start()
            if proc not in started:
                started.append(proc)
            if wait_until(svc.answering, timeout, abort=proc.exited_early):
                break
            tail = proc.log_tail(8)
            if not proc.exited_early():
                raise StackError(
                    svc.name,
                    f"did not answer within {timeout}s; last log lines:\n{tail}",
                    f"full log: {proc.log_path}",
                )
            how = proc.describe_exit()
            # Seen on a crowded machine: a start-up killed from outside with an empty log, or SeaweedFS's
            # master exiting on a port another process grabbed between our check and its bind. One more
            # try, said out loud; a second failure is reported with the log.
            if attempt == 1:
                say(f"{svc.name}: {how} during start-up; starting it once more")
                proc.stop()  # whatever is left of its process group
                continue
            raise StackError(
                svc.name, f"{how} during start-up; last log lines:\n{tail}", f"full log: {proc.log_path}"
            )
        say(f"{svc.name}: started (pid {proc.pid()})")

    def _seed(self, info: StackInfo) -> None:
        operator = info.operator_client()
        admin = self.s3.admin_keys()
        existing = read_secret(operator, ENV, "objectstore")
        if existing is None:
            operator.secrets.kv.v2.create_or_update_secret(
                path=layout.secret_path(ENV, "objectstore"),
                mount_point=layout.KV_MOUNT,
                cas=0,
                secret={
                    "admin_access_key": admin["access_key"],
                    "admin_secret_key": admin["secret_key"],
                    "endpoint": self.s3.endpoint,
                },
            )
        store = IamObjectStoreAdmin(self.s3.client("s3"), self.s3.client("iam"))
        seed(ENV, operator, store, EnvironmentEndpoints(self.s3.endpoint, self.mlflow.uri, self.nats.url))
        # the NATS servers' copy of the workloads' passwords (as Pulumi writes a cluster's), then each into
        # its workload's nats_url (spira/secrets/nats_users.py)
        from spira.secrets.nats_users import seed_nats_users

        if read_secret(operator, ENV, "nats-users") is None:
            operator.secrets.kv.v2.create_or_update_secret(
                path=layout.secret_path(ENV, "nats-users"),
                mount_point=layout.KV_MOUNT,
                cas=0,
                secret=self.nats.workload_passwords(),
            )
        seed_nats_users(ENV, operator)

    def _seed_mlflow(self, info: StackInfo) -> None:
        """MLflow's admin into Vault (as the Pulumi program writes a cluster's), then the workloads' users."""
        operator = info.operator_client()
        username, password = self.mlflow.admin()
        if read_secret(operator, ENV, "mlflow-admin") is None:
            operator.secrets.kv.v2.create_or_update_secret(
                path=layout.secret_path(ENV, "mlflow-admin"),
                mount_point=layout.KV_MOUNT,
                cas=0,
                secret={"username": username, "password": password},
            )
        admin = MlflowUserAdmin(self.mlflow.uri, username, password, str(self.mlflow.admin_file))
        try:
            seed_mlflow_users(ENV, operator, admin)
        except SecretsError as exc:
            raise StackError("mlflow", str(exc)) from exc

    def _info(self) -> StackInfo:
        keys = self.s3.admin_keys()
        return StackInfo(
            home=self.cfg.home,
            vault_addr=self.vault.addr,
            vault_root_token=self.vault.keys()["root_token"],
            s3_endpoint=self.s3.endpoint,
            s3_access_key=keys["access_key"],
            s3_secret_key=keys["secret_key"],
            mlflow_uri=self.mlflow.uri,
            mlflow_admin=self.mlflow.admin() if self.mlflow.admin_file.is_file() else None,
            registry=self.registry.address if self.with_registry else None,
            env_name=ENV,
            nats_url=self.nats.operator_url,  # the operator's user: every right (spira/stack/nats.py)
            prometheus_url=self.prometheus.url,
        )

    def info(self) -> StackInfo:
        """The running stack's info; an error naming the service if part of it is down."""
        for st in self.status():
            if st.health != "healthy" and st.health != "not installed":
                raise StackError(st.name, f"is {st.health}", "run `spira stack up`")
        return self._info()

    # -- down / status -----------------------------------------------------------------------------
    def _all(self):
        procs = [(self.registry, lambda: self.registry.process())] if registry_available() else []
        return [
            *procs,
            (self.prometheus, self.prometheus.process),
            (self.mlflow, self.mlflow.process),
            (self.nats, self.nats.process),
            (self.s3, self.s3.process),
            (self.vault, self.vault.process),
        ]

    def down(self) -> list[str]:
        stopped = []
        for svc, make in self._all():
            try:
                proc = make()
            except StackError:
                continue
            if proc.stop():
                stopped.append(svc.name)
        return stopped

    def status(self) -> list[ServiceStatus]:
        out = []
        for svc, make in reversed(self._all()):
            try:
                proc = make()
            except StackError:
                out.append(ServiceStatus(svc.name, svc.ports(), None, "not installed"))
                continue
            pid = proc.pid()
            health = "stopped" if pid is None else "healthy" if svc.healthy() else "unhealthy"
            out.append(
                ServiceStatus(
                    svc.name, svc.ports()[:1] if svc.name != "seaweedfs" else svc.ports()[:4], pid, health
                )
            )
        if not self.with_registry and not registry_available():
            out = [s for s in out if s.name != "registry"] + [
                ServiceStatus("registry", self.registry.ports()[:1], None, "not installed")
            ]
        return out
