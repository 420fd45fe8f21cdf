"""Where a secret's consumers run, as a rotation sees them: the ports, and how each service reads its key.

How a service reads its secret decides how the rotation knows it moved to the new version:
- `cache`: a server re-reading Vault through its TTL cache (serving). Each of its processes (each pod
  behind its Services, ready or terminating) exports `spira_secret_version`; every one must reach the
  new version. A process that goes away no longer holds the key.
- `start`: a server that reads its key once, at start (MLflow: its S3 key becomes the artifact proxy's
  environment). The rotation restarts it and waits until every instance started after the new version
  was published and is ready.
- `run`: a batch run that reads its key once per run (training). Each run keeps a lease in the object
  store (spira_core.run_lease) naming the version it read; the rotation waits until no live lease holds
  an older one.

Two ports: Fleet (processes: list them, scrape one, restart a `start` service) with an adapter per place
(fleet_local: the local stack's registered processes and its service control; fleet_kubernetes: the
Kubernetes API through kubectl), and RunLeases (the leases in the object store, one adapter).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from spira.secrets.store import SecretsError
from spira_core.run_lease import RunLease, lease_prefix

CACHE, START, RUN = "cache", "start", "run"
# How each workload with a rotatable credential reads it (infra/vault/layout.py lists the workloads).
READS: dict[str, str] = {"serving": CACHE, "mlflow": START, "training": RUN}
# Whose runs talk to a `start` service throughout: restarting it in place (not rolling) would fail them.
CLIENT_RUNS: dict[str, tuple[str, ...]] = {"mlflow": ("training",)}
# The secret key naming the bucket a service's run leases are kept in (its own: its key may write there).
LEASE_BUCKET_KEY: dict[str, str] = {"training": "features_bucket"}
READY, TERMINATING, STARTING = "ready", "terminating", "starting"


class FleetError(SecretsError):
    """The place consumers run could not be asked (Kubernetes API, the local stack)."""


def reads(service: str) -> str:
    try:
        return READS[service]
    except KeyError:
        raise SecretsError(
            f"no consumer discovery is declared for {service!r} (spira/secrets/fleet.py READS); "
            "pass --consumer URL or --consumer-ttl SECONDS"
        ) from None


@dataclass(frozen=True)
class Instance:
    name: str  # a pod's name; locally the process's name and pid
    state: str  # ready | terminating | starting
    address: str = ""  # what `metrics` needs to reach it (pod:port, or a URL)

    def __str__(self) -> str:
        return self.name if self.state == READY else f"{self.name} ({self.state})"


@dataclass(frozen=True)
class RestartState:
    begun: bool  # a restart was asked for (or happened) after the time given
    done: bool  # every instance started since then and is ready; none older is left
    seen: str  # what was seen, for the operator


class Fleet(ABC):
    # True where a restart stops the service for a moment (one local process), False where it rolls
    # (a Deployment's new pods are ready before the old ones stop).
    restart_interrupts: bool = False

    @abstractmethod
    def instances(self, service: str) -> list[Instance]:
        """Every process of `service` that may hold its key now: ready, starting and terminating."""

    @abstractmethod
    def metrics(self, service: str, instance: Instance) -> str:
        """The instance's /metrics text (FleetError if it cannot be reached)."""

    @abstractmethod
    def restart(self, service: str) -> None:
        """Restart a service that reads its key only at start (locally: done when it returns; in a
        cluster: a rollout restart, followed with `restarted_since`)."""

    @abstractmethod
    def restart_state(self, service: str, since: datetime) -> RestartState:
        """Whether `service` was restarted after `since`, and whether that restart is complete."""


class RunLeases(ABC):
    @abstractmethod
    def leases(self, service: str) -> list[RunLease]:
        """Every lease `service`'s runs hold (live or expired)."""


class S3RunLeases(RunLeases):
    """The leases in the object store, read with the store's admin S3 client."""

    def __init__(self, s3_client, bucket_of: Callable[[str], str]) -> None:
        self.s3 = s3_client
        self.bucket_of = bucket_of

    def leases(self, service: str) -> list[RunLease]:
        import botocore.exceptions

        bucket = self.bucket_of(service)
        out = []
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=lease_prefix(service)
            )
            keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        except botocore.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchBucket":
                return []
            raise
        for key in keys:
            try:
                raw = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except botocore.exceptions.ClientError as exc:
                if exc.response["Error"]["Code"] in {"NoSuchKey", "404"}:
                    continue  # the run ended between the listing and the read
                raise
            try:
                lease = RunLease.from_json(raw)
            except (ValueError, KeyError, TypeError):
                continue  # not a lease this version writes; never holds a rotation up
            if not lease.live(datetime.now(UTC)):
                self.s3.delete_object(Bucket=bucket, Key=key)  # ended or dead: runs cannot delete their own
            out.append(lease)
        return out
