"""What a cloud package hands to the cloud-neutral components: the contract a GKE package would also meet."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class VaultUnseal:
    """Auto-unseal with a cloud KMS key: the `seal` stanza for Vault's config and the service-account
    annotations that give Vault's pods the identity allowed to use the key."""

    seal_stanza: pulumi.Output[str]
    service_account_annotations: pulumi.Output[dict[str, str]]


@dataclass(frozen=True)
class Database:
    """A managed Postgres database (MLflow's backend store)."""

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    name: str
    username: str
    password: pulumi.Output[str]


@dataclass(frozen=True)
class Platform:
    kube_provider: k8s.Provider
    # Issuer of the cluster's service-account tokens; Vault's JWT auth trusts it.
    oidc_issuer: pulumi.Output[str]
    # StorageClass whose volumes are encrypted at rest; every stateful chart uses it.
    storage_class: str
    unseal: VaultUnseal
    database: Database
    registry_urls: pulumi.Output[dict[str, str]]
    cluster_name: pulumi.Output[str]
    # The GPU node pool, so that GPU add-ons wait for it.
    gpu_pool: pulumi.Resource
