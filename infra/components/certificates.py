"""In-cluster TLS (docs/security.md): cert-manager (jetstack chart, pinned in infra/charts.yaml) issues the
certificates of the Services that carry patient data (/predict, the object store's S3 API, NATS's client
port and routes) from the platform CA, and renews them before they expire.

The platform CA is the private CA of Vault's certificate (infra/components/vault.py): every workload
already trusts it and only it (the vault-ca ConfigMap beside its projected token), so a client verifies
the model and the object store with the file it verifies Vault with. The CA's key reaches
cert-manager as the Secret of a ClusterIssuer of type `ca`, in cert-manager's own namespace, and nowhere
else. The model's Certificate is a manifest (argocd/base/model-certificate.yaml, issuerRef = ISSUER).
The object store's and NATS's are created here (ObjectStore and Queue ask for them) before their charts,
which mount the Secret cert-manager writes (tls.crt, tls.key, ca.crt). Every body below is validated against the vendored
upstream CRD schemas (spira/manifests/crds/) by tests/unit/infra/test_in_cluster_tls.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.components.helm import pinned_release

NAMESPACE = "cert-manager"
RELEASE = "cert-manager"
# The one ClusterIssuer; the model's Certificate manifest names it too (checked by the tests).
ISSUER = "spira-platform-ca"
CA_SECRET = "spira-platform-ca"
API_VERSION = "cert-manager.io/v1"
# 90-day certificates renewed 30 days before they expire (cert-manager rewrites the Secret; the runbook
# says which pods reload it on their own and which restart).
DURATION = "2160h"
RENEW_BEFORE = "720h"
SERVER_USAGES = ["server auth", "digital signature", "key encipherment"]


def service_dns_names(service: str, namespace: str, wildcard_headless: str | None = None) -> list[str]:
    """The names a client in the cluster may use for a Service (short, namespaced, fully qualified), and
    with `wildcard_headless` each pod of that headless Service (a StatefulSet's routes)."""
    names = [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]
    if wildcard_headless:
        names += [
            f"*.{wildcard_headless}.{namespace}.svc",
            f"*.{wildcard_headless}.{namespace}.svc.cluster.local",
        ]
    return names


def certificate(name: str, namespace: str, dns_names: list[str], labels: dict[str, str]) -> dict[str, Any]:
    """A Certificate from the platform CA into the Secret `name` (tls.crt, tls.key, ca.crt)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "secretName": name,
            "secretTemplate": {"labels": labels},
            "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": ISSUER},
            "commonName": dns_names[2],
            "dnsNames": dns_names,
            "duration": DURATION,
            "renewBefore": RENEW_BEFORE,
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "usages": SERVER_USAGES,
        },
    }


# NATS (nats-io/nats chart): the client port and the cluster routes over TLS with one Certificate whose
# names are the client Service's and every server's (the routes dial <pod>.<service>-headless.<namespace>
# .svc.cluster.local: `routeURLs.useFQDN`, so the name a route verifies is one the wildcard covers); the
# routes verify each other against the CA in the same Secret (tlsCA), so the key also serves as a client's.
# The HTTP monitor port stays plain HTTP: KEDA's nats-jetstream scaler reads /jsz there without TLS, and
# only KEDA may reach it (infra/environments.yaml `network`); it carries counters, never a message.
NATS_TLS_SECRET = "nats-tls"


def nats_certificate(service: str, namespace: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "nats", "app.kubernetes.io/component": "queue"}
    body = certificate(
        NATS_TLS_SECRET, namespace, service_dns_names(service, namespace, f"{service}-headless"), labels
    )
    body["spec"]["usages"] = [*SERVER_USAGES, "client auth"]
    return body


def nats_tls_values() -> dict[str, Any]:
    """The nats chart's values for TLS on the client port and the routes (deep-merged into its values by
    the Queue component, with `services.nats.scheme: tls` in infra/environments.yaml for the clients)."""
    secret = {"enabled": True, "secretName": NATS_TLS_SECRET}
    return {
        "config": {
            "nats": {"tls": secret},
            "cluster": {"tls": secret, "routeURLs": {"useFQDN": True}},
        },
        "tlsCA": {"enabled": True, "secretName": NATS_TLS_SECRET, "key": "ca.crt"},
    }


def cluster_issuer() -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterIssuer",
        "metadata": {"name": ISSUER, "labels": {"app.kubernetes.io/name": ISSUER}},
        "spec": {"ca": {"secretName": CA_SECRET}},
    }


def cert_manager_values() -> dict[str, Any]:
    # The chart installs its CRDs (Certificate, ClusterIssuer) at the pinned version; the issuer's Secret
    # lives in cert-manager's namespace, the cluster resource namespace of ClusterIssuers.
    return {
        "crds": {"enabled": True, "keep": True},
        "global": {"leaderElection": {"namespace": NAMESPACE}},
        "clusterResourceNamespace": NAMESPACE,
        "prometheus": {"enabled": False},
    }


@dataclass(frozen=True)
class PlatformTlsArgs:
    ca_cert_pem: pulumi.Input[str]
    ca_key_pem: pulumi.Input[str]


class PlatformTls(pulumi.ComponentResource):
    """cert-manager and the ClusterIssuer of the platform CA; `certificate` adds one Certificate."""

    def __init__(self, name: str, args: PlatformTlsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:platform:PlatformTls", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": NAMESPACE}, opts=child)
        self.release = pinned_release(
            RELEASE,
            "cert-manager",
            NAMESPACE,
            cert_manager_values(),
            pulumi.ResourceOptions(parent=self, depends_on=[ns]),
        )
        ca = k8s.core.v1.Secret(
            f"{name}-ca",
            metadata={"name": CA_SECRET, "namespace": ns.metadata.name},
            type="kubernetes.io/tls",
            string_data={"tls.crt": args.ca_cert_pem, "tls.key": args.ca_key_pem},
            opts=child,
        )
        body = cluster_issuer()
        self.issuer = k8s.apiextensions.CustomResource(
            f"{name}-issuer",
            api_version=body["apiVersion"],
            kind=body["kind"],
            metadata=body["metadata"],
            spec=body["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release, ca]),
        )
        self.register_outputs({"issuer": ISSUER})

    def certificate(
        self, name: str, body: dict[str, Any], depends_on: list[pulumi.Resource]
    ) -> k8s.apiextensions.CustomResource:
        """The Certificate `body` (see `certificate`), after the issuer and what it `depends_on` (its
        namespace); the chart that mounts its Secret depends on the returned resource."""
        return k8s.apiextensions.CustomResource(
            name,
            api_version=body["apiVersion"],
            kind=body["kind"],
            metadata=body["metadata"],
            spec=body["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.issuer, *depends_on]),
        )
