"""The workload namespace (model, gate, MLflow, training jobs) and what every pod in it may mount: the
private CA that signs Vault's certificate, as the ConfigMap infra/environments.yaml names (`vault-ca`,
key `ca.crt`). Pods mount it next to their projected Vault token (/var/run/secrets/vault/ca.crt)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.environments import declared


@dataclass(frozen=True)
class WorkloadsArgs:
    # PEM of the CA that signs Vault's server certificate (the Vault component's private CA).
    vault_ca_pem: pulumi.Input[str]


class Workloads(pulumi.ComponentResource):
    def __init__(self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:platform:Workloads", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        table = declared()
        ns = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": table.workload_namespace}, opts=child)
        self.namespace: pulumi.Output[str] = ns.metadata.name
        # Not a secret: a CA certificate is public; a ConfigMap lets every pod mount it without RBAC on Secrets.
        self.vault_ca = k8s.core.v1.ConfigMap(
            f"{name}-{table.vault_ca.configmap}",
            metadata={"name": table.vault_ca.configmap, "namespace": self.namespace},
            data={table.vault_ca.key: args.vault_ca_pem},
            opts=child,
        )
        self.register_outputs({"namespace": self.namespace})
