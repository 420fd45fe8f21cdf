"""The NetworkPolicies the Pulumi program applies, rendered by infra/network.py from infra/environments.yaml
`network`: each namespace the program owns (Vault's, the object store's, NATS's, Prometheus's, KEDA's, and
the controllers': argo, argo-events, argo-rollouts, cert-manager, kyverno, argocd) gets its `default-deny`,
`dns` and per-service policy; in the workload namespace, whose default deny Argo CD
applies (argocd/base), only the policies of the pods this program creates there (MLflow, the backup
CronJobs). The stack's object-store engine and VPC CIDR complete the rendering (the S3 port, where the
control plane and the database are)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import network


@dataclass(frozen=True)
class NetworkPoliciesArgs:
    engine: str
    vpc_cidr: str


class NetworkPolicies(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:platform:NetworkPolicies", name, None, opts)
        # The namespaces come with the components this one depends on (opts.depends_on).
        child = pulumi.ResourceOptions(parent=self)
        context = network.Context(engine=args.engine, vpc_cidr=args.vpc_cidr)
        labels = {"app.kubernetes.io/part-of": "spira", "app.kubernetes.io/managed-by": "pulumi"}
        names = []
        for rendered in network.render(context, only=network.PULUMI):
            meta = rendered.doc["metadata"]
            resource = f"{name}-{meta['namespace']}-{meta['name']}"
            k8s.networking.v1.NetworkPolicy(
                resource,
                metadata={**meta, "labels": {**meta["labels"], **labels}},
                spec=rendered.doc["spec"],
                opts=child,
            )
            names.append(f"{meta['namespace']}/{meta['name']}")
        self.register_outputs({"policies": names})
