"""infra/environments.yaml parsed once: the environments and the names and addresses the layers share.

Pure functions over one file in the repository (no Pulumi, no cloud), so the Pulumi program, the Vault
layout, `spira secrets` and `spira manifests` all read the same values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

INFRA_DIR = Path(__file__).resolve().parent
DECLARATION = INFRA_DIR / "environments.yaml"
OVERLAYS_DIR = "argocd/overlays"


class DeclarationError(ValueError):
    """infra/environments.yaml is missing a value or holds a malformed one."""


@dataclass(frozen=True)
class Environment:
    name: str
    cluster: bool
    # Cluster environments only: the branch the root Application follows and the overlay it syncs.
    branch: str | None

    @property
    def overlay(self) -> str | None:
        return f"{OVERLAYS_DIR}/{self.name}" if self.cluster else None


@dataclass(frozen=True)
class ServiceAddress:
    """An in-cluster Service: `<service>.<namespace>.svc.cluster.local:<port>`."""

    name: str
    namespace: str
    service: str
    port: int
    scheme: str
    release: str | None  # the Helm release that creates it; None when the program creates the Service
    monitor_port: int | None = None  # an HTTP monitoring port beside the client port (NATS: /jsz)
    # the headless Service whose per-pod names (`<pod>.<monitor_service>…`) reach each server's monitor
    monitor_service: str | None = None

    @property
    def host(self) -> str:
        return f"{self.service}.{self.namespace}.svc.cluster.local"

    @property
    def monitor_host(self) -> str:
        """Where the monitor port is read: the headless Service when one is declared, else the client's."""
        return f"{self.monitor_service or self.service}.{self.namespace}.svc.cluster.local"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


@dataclass(frozen=True)
class VaultCa:
    configmap: str
    key: str


# S3 actions that apply to a bucket itself (resource `arn:aws:s3:::<bucket>`); the others apply to objects.
BUCKET_ACTIONS = frozenset({"ListBucket"})
KNOWN_ACTIONS = BUCKET_ACTIONS | {"GetObject", "PutObject", "DeleteObject"}


@dataclass(frozen=True)
class Grant:
    """S3 actions a service may perform on one bucket, under `prefix` ("" for the whole bucket)."""

    bucket: str
    prefix: str
    actions: tuple[str, ...]


@dataclass(frozen=True)
class QueueSettings:
    """The burst path's JetStream names and delivery policy (infra/environments.yaml `queue`)."""

    stream: str
    subject: str
    consumer: str
    dead_letter_stream: str
    dead_letter_subject: str
    results: str  # the JetStream key-value bucket of job states and results (key = job id)
    object_prefix: str  # where the intake stores uploads in the archive bucket, by content hash
    ack_wait_s: float
    max_deliver: int
    backoff_s: tuple[float, ...]
    duplicate_window_s: float
    results_ttl_s: float
    replicas_by_env: dict[str, int]

    def replicas(self, env: str) -> int:
        try:
            return self.replicas_by_env[env]
        except KeyError:
            raise DeclarationError(f"infra/environments.yaml: queue.replicas has no {env!r}") from None

    def secret_value(self, env: str) -> str:
        """The settings of `env` as the intake's and workers' secrets carry them (key `queue`, JSON)."""
        import json
        from dataclasses import asdict

        values = {k: v for k, v in asdict(self).items() if k != "replicas_by_env"}
        return json.dumps({**values, "backoff_s": list(self.backoff_s), "replicas": self.replicas(env)})


@dataclass(frozen=True)
class Declaration:
    environments: dict[str, Environment]
    workload_namespace: str
    services: dict[str, dict[str, Any]]
    bucket_suffixes: dict[str, str]
    vault_ca: VaultCa
    serving: dict[str, dict[str, str]] = field(default_factory=dict)
    # service -> [(bucket secret key, prefix, actions)], as infra/environments.yaml declares them.
    access: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = field(default_factory=dict)
    queue_settings: QueueSettings | None = None
    # (bucket secret key, key prefix) of the promotion evidence bundles
    evidence: tuple[str, str] | None = None
    # Who may talk to whom (the `network` section as written; infra/network.py reads it).
    network: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.environments)

    @property
    def clusters(self) -> tuple[str, ...]:
        return tuple(name for name, env in self.environments.items() if env.cluster)

    def environment(self, name: str) -> Environment:
        try:
            return self.environments[name]
        except KeyError:
            raise ValueError(
                f"unknown environment {name!r}; expected one of {', '.join(self.names)}"
            ) from None

    def cluster(self, name: str) -> Environment:
        env = self.environment(name)
        if not env.cluster:
            raise ValueError(
                f"{name!r} is not a cluster environment; clusters are {', '.join(self.clusters)}"
            )
        return env

    def service(self, name: str, engine: str | None = None) -> ServiceAddress:
        """An in-cluster Service by its role (vault, mlflow, prometheus, objectstore with its engine)."""
        raw = self.services.get(name)
        if raw is None:
            raise DeclarationError(f"infra/environments.yaml declares no service {name!r}")
        if "engines" in raw:
            if engine not in raw["engines"]:
                raise DeclarationError(f"infra/environments.yaml: service {name!r} has no engine {engine!r}")
            raw = {**raw, **raw["engines"][engine]}
        return ServiceAddress(
            name=name,
            namespace=str(raw["namespace"]),
            service=str(raw["service"]),
            port=int(raw["port"]),
            scheme=str(raw["scheme"]),
            release=raw.get("release"),
            monitor_port=int(raw["monitor_port"]) if "monitor_port" in raw else None,
            monitor_service=raw.get("monitor_service"),
        )

    @property
    def queue(self) -> QueueSettings:
        if self.queue_settings is None:
            raise DeclarationError("infra/environments.yaml declares no queue")
        return self.queue_settings

    def serving_settings(self, env: str) -> dict[str, str]:
        """The settings an environment declares for its serving secret (strings, as Vault keeps them)."""
        self.environment(env)
        return dict(self.serving.get(env, {}))

    def object_store_grants(self, env: str, service: str) -> tuple[Grant, ...]:
        """What `service` may do in `env`'s object store (nothing when it declares no grant)."""
        names = self.buckets(env)
        return tuple(
            Grant(names[key], prefix, actions) for key, prefix, actions in self.access.get(service, ())
        )

    def evidence_location(self, env: str) -> tuple[str, str]:
        """(bucket, prefix) of `env`'s promotion evidence bundles."""
        if self.evidence is None:
            raise DeclarationError("infra/environments.yaml declares no evidence location")
        key, prefix = self.evidence
        return self.buckets(env)[key], prefix

    def buckets(self, env: str) -> dict[str, str]:
        """Secret key -> bucket name of an environment (`spira-<env>-<suffix>`)."""
        self.environment(env)
        return {key: f"spira-{env}-{suffix}" for key, suffix in self.bucket_suffixes.items()}


def parse(raw: Any) -> Declaration:
    try:
        environments = {
            str(name): Environment(
                name=str(name),
                cluster=bool(entry["cluster"]),
                branch=str(entry["branch"]) if entry.get("cluster") else None,
            )
            for name, entry in raw["environments"].items()
        }
        unknown = set(raw.get("serving_settings") or {}) - set(environments)
        if unknown:
            raise DeclarationError(
                f"infra/environments.yaml: serving_settings for undeclared {sorted(unknown)}"
            )
        bucket_suffixes = {str(k): str(v) for k, v in raw["buckets"].items()}
        return Declaration(
            environments=environments,
            workload_namespace=str(raw["workload_namespace"]),
            services=dict(raw["services"]),
            bucket_suffixes=bucket_suffixes,
            vault_ca=VaultCa(str(raw["vault_ca"]["configmap"]), str(raw["vault_ca"]["key"])),
            serving={
                str(env): {str(k): str(v) for k, v in (values or {}).items()}
                for env, values in (raw.get("serving_settings") or {}).items()
            },
            access=_access(raw.get("object_store_access") or {}, bucket_suffixes),
            queue_settings=_queue(raw["queue"], environments) if raw.get("queue") else None,
            evidence=_evidence(raw.get("evidence"), bucket_suffixes),
            network=dict(raw.get("network") or {}),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise DeclarationError(f"infra/environments.yaml lacks {exc}") from exc


def _evidence(raw: Any, bucket_suffixes: dict[str, str]) -> tuple[str, str] | None:
    if not raw:
        return None
    key, prefix = str(raw["bucket"]), str(raw["prefix"])
    if key not in bucket_suffixes:
        raise DeclarationError(f"infra/environments.yaml: evidence.bucket {key!r} is not a declared bucket")
    if not prefix.endswith("/"):
        raise DeclarationError("infra/environments.yaml: evidence.prefix must end with '/'")
    return key, prefix


def _queue(raw: Any, environments: dict[str, Environment]) -> QueueSettings:
    replicas = {str(k): int(v) for k, v in raw["replicas"].items()}
    if set(replicas) != set(environments):
        raise DeclarationError(
            f"infra/environments.yaml: queue.replicas names {sorted(replicas)}; environments are "
            f"{sorted(environments)}"
        )
    backoff = tuple(float(b) for b in raw["backoff_s"])
    max_deliver = int(raw["max_deliver"])
    if len(backoff) >= max_deliver:
        raise DeclarationError(
            "infra/environments.yaml: queue.backoff_s needs fewer delays than max_deliver deliveries"
        )
    prefix = str(raw["object_prefix"])
    if not prefix.endswith("/"):
        raise DeclarationError("infra/environments.yaml: queue.object_prefix must end with '/'")
    return QueueSettings(
        stream=str(raw["stream"]),
        subject=str(raw["subject"]),
        consumer=str(raw["consumer"]),
        dead_letter_stream=str(raw["dead_letter_stream"]),
        dead_letter_subject=str(raw["dead_letter_subject"]),
        results=str(raw["results"]),
        object_prefix=prefix,
        ack_wait_s=float(raw["ack_wait_s"]),
        max_deliver=max_deliver,
        backoff_s=backoff,
        duplicate_window_s=float(raw["duplicate_window_s"]),
        results_ttl_s=float(raw["results_ttl_s"]),
        replicas_by_env=replicas,
    )


def _access(
    raw: Any, bucket_suffixes: dict[str, str]
) -> dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]]:
    out = {}
    for service, grants in raw.items():
        parsed = []
        for grant in grants:
            key, prefix = str(grant["bucket"]), str(grant.get("prefix") or "")
            actions = tuple(str(a) for a in grant["actions"])
            where = f"infra/environments.yaml: object_store_access.{service}"
            if key not in bucket_suffixes:
                raise DeclarationError(f"{where} names the undeclared bucket {key!r}")
            unknown = sorted(set(actions) - KNOWN_ACTIONS)
            if unknown or not actions:
                raise DeclarationError(
                    f"{where}: actions {unknown or '[]'}; known are {sorted(KNOWN_ACTIONS)}"
                )
            # ListBucket under a prefix lists only keys under it (the policy conditions it on s3:prefix).
            if prefix and not prefix.endswith("/"):
                raise DeclarationError(f"{where}: a prefix ({prefix!r}) must end with '/'")
            parsed.append((key, prefix, actions))
        out[str(service)] = tuple(parsed)
    return out


@cache
def declared() -> Declaration:
    """The repository's declaration (read once per process)."""
    if not DECLARATION.is_file():
        raise DeclarationError(f"{DECLARATION} is missing")
    return parse(yaml.safe_load(DECLARATION.read_text()))
