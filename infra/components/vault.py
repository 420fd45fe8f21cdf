"""Vault on the cluster (HashiCorp chart: HA raft, TLS, cloud-KMS auto-unseal), then its configuration
with pulumi-vault from the single layout in infra.vault.layout (JWT auth, KV v2, policies, roles, audit)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls
import pulumi_vault as vault

from infra.components.helm import pinned_release
from infra.components.platform import VaultUnseal
from infra.config import VaultSettings
from infra.environments import declared
from infra.vault import clients, layout

# Namespace, release and port of the in-cluster Service: infra/environments.yaml (services.vault).
ADDRESS = declared().service("vault")
NAMESPACE = ADDRESS.namespace
RELEASE = str(ADDRESS.release)
PORT = ADDRESS.port
# The chart names its service account after the release; the unseal key's IAM role trusts exactly it.
SERVICE_ACCOUNT = "vault"
TLS_SECRET = "vault-tls"
TLS_DIR = f"/vault/userconfig/{TLS_SECRET}"
AUDIT_DIR = "/vault/audit"
# Two audit devices, path -> file_path. Vault answers a request only if at least one device recorded it,
# so with a single file a full audit volume blocks every request. The file device does no rotation of
# its own (no size or count option; it reopens its file on SIGHUP, which a logrotate sidecar could only
# send from a shared process namespace: not done here). The stdout copy goes to the container log, which
# the kubelet rotates (containerLogMaxSize/-MaxFiles) and the node's log agent ships; the file on its own
# volume stays the one operators query with jq (docs/runbooks/vault.md), and may fill without blocking.
AUDIT_DEVICES = {"file": f"{AUDIT_DIR}/{layout.AUDIT_LOG_FILE}", "stdout": "stdout"}
CERT_VALIDITY_HOURS = 24 * 365
SERVER_USES = ["key_encipherment", "digital_signature", "server_auth", "client_auth"]


@dataclass(frozen=True)
class VaultArgs:
    environment: str
    settings: VaultSettings
    unseal: VaultUnseal
    oidc_issuer: pulumi.Input[str]
    storage_class: str


@dataclass(frozen=True)
class VaultSecrets:
    """What a component needs to write a KV v2 secret into this Vault."""

    provider: vault.Provider
    mount: vault.kv.SecretBackendV2


def _dns_names(replicas: int) -> list[str]:
    svc = [
        RELEASE,
        f"{RELEASE}.{NAMESPACE}",
        f"{RELEASE}.{NAMESPACE}.svc",
        f"{RELEASE}.{NAMESPACE}.svc.cluster.local",
    ]
    peers = [f"{RELEASE}-{i}.{RELEASE}-internal" for i in range(replicas)]
    return [*svc, f"*.{RELEASE}-internal", f"*.{RELEASE}-internal.{NAMESPACE}.svc.cluster.local", *peers]


def server_config(replicas: int, seal_stanza: str) -> str:
    """Vault's server HCL: TLS listener, raft storage joining every peer over TLS, the KMS seal."""
    joins = "".join(
        f'  retry_join {{\n    leader_api_addr     = "https://{RELEASE}-{i}.{RELEASE}-internal:{PORT}"\n'
        f'    leader_ca_cert_file = "{TLS_DIR}/ca.crt"\n  }}\n'
        for i in range(replicas)
    )
    return (
        "ui = true\n"
        'listener "tcp" {\n'
        f'  address         = "[::]:{PORT}"\n'
        '  cluster_address = "[::]:8201"\n'
        f'  tls_cert_file   = "{TLS_DIR}/tls.crt"\n'
        f'  tls_key_file    = "{TLS_DIR}/tls.key"\n'
        '  tls_min_version = "tls12"\n'
        "}\n"
        'storage "raft" {\n'
        '  path = "/vault/data"\n'
        f"{joins}"
        "}\n"
        'service_registration "kubernetes" {}\n'
        f"{seal_stanza}"
    )


class Vault(pulumi.ComponentResource):
    def __init__(self, name: str, args: VaultArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:platform:Vault", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        replicas = args.settings.replicas

        # TLS: a private CA for Vault, so clients pin exactly this CA (handed to them as ca.crt).
        ca_key = tls.PrivateKey(f"{name}-ca", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        self.ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name=f"{name} CA", organization="SPIRA Platform"),
            validity_period_hours=CERT_VALIDITY_HOURS * 5,
            allowed_uses=["cert_signing", "crl_signing"],
            opts=child,
        )
        server_key = tls.PrivateKey(f"{name}-server", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        csr = tls.CertRequest(
            f"{name}-server",
            private_key_pem=server_key.private_key_pem,
            dns_names=_dns_names(replicas),
            ip_addresses=["127.0.0.1"],
            subject=tls.CertRequestSubjectArgs(common_name=f"{RELEASE}.{NAMESPACE}.svc"),
            opts=child,
        )
        cert = tls.LocallySignedCert(
            f"{name}-server",
            cert_request_pem=csr.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=self.ca.cert_pem,
            validity_period_hours=CERT_VALIDITY_HOURS,
            early_renewal_hours=24 * 30,
            allowed_uses=SERVER_USES,
            opts=child,
        )
        ns = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": NAMESPACE}, opts=child)
        tls_secret = k8s.core.v1.Secret(
            f"{name}-tls",
            metadata={"name": TLS_SECRET, "namespace": ns.metadata.name},
            type="kubernetes.io/tls",
            string_data={
                "tls.crt": cert.cert_pem,
                "tls.key": server_key.private_key_pem,
                "ca.crt": self.ca.cert_pem,
            },
            opts=child,
        )

        config = args.unseal.seal_stanza.apply(lambda seal: server_config(replicas, seal))
        values = {
            "global": {"enabled": True, "tlsDisable": False},
            "injector": {"enabled": True},
            "ui": {"enabled": True},
            "server": {
                "extraEnvironmentVars": {"VAULT_CACERT": f"{TLS_DIR}/ca.crt"},
                "extraVolumes": [{"type": "secret", "name": TLS_SECRET}],
                "serviceAccount": {
                    "create": True,
                    "name": SERVICE_ACCOUNT,
                    "annotations": args.unseal.service_account_annotations,
                },
                "dataStorage": {
                    "enabled": True,
                    "size": args.settings.storage_size,
                    "storageClass": args.storage_class,
                },
                # The file audit device writes here (layout.AUDIT_LOG_FILE), on its own volume.
                "auditStorage": {
                    "enabled": True,
                    "size": args.settings.storage_size,
                    "storageClass": args.storage_class,
                },
                "standalone": {"enabled": False},
                "ha": {
                    "enabled": True,
                    "replicas": replicas,
                    "raft": {"enabled": True, "setNodeId": True, "config": config},
                },
            },
        }
        self.release = pinned_release(
            RELEASE, "vault", NAMESPACE, values, pulumi.ResourceOptions(parent=self, depends_on=[tls_secret])
        )
        self.ca_cert_pem = self.ca.cert_pem
        # The same CA issues the in-cluster Services' certificates through cert-manager (certificates.py).
        self.ca_key_pem = pulumi.Output.secret(ca_key.private_key_pem)
        self.secrets: VaultSecrets | None = None
        if args.settings.configured:
            self.secrets = self._configure(name, args)
        else:
            pulumi.log.warn(
                "vaultConfigured=false: Vault is installed but not configured; run `vault operator init`, "
                "then `pulumi config rm vaultConfigured` and `pulumi up` again (docs/infra.md)",
                resource=self,
            )
        self.register_outputs({"caCertPem": self.ca_cert_pem, "configured": args.settings.configured})

    def _configure(self, name: str, args: VaultArgs) -> VaultSecrets:
        """Auth, secrets engine, policies, roles and audit from the one layout the local bootstrap uses."""
        env = args.environment
        # The token comes from VAULT_TOKEN in the operator's environment: never from config or state.
        provider = vault.Provider(
            f"{name}-provider",
            address=args.settings.address,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
        )
        opts = pulumi.ResourceOptions(parent=self, provider=provider)
        jwt = vault.jwt.AuthBackend(
            f"{name}-jwt",
            path=layout.JWT_MOUNT,
            type="jwt",
            description="Kubernetes service-account tokens (audience vault) of this cluster",
            oidc_discovery_url=args.oidc_issuer,
            bound_issuer=args.oidc_issuer,
            opts=opts,
        )
        mount = vault.Mount(
            f"{name}-kv",
            path=layout.KV_MOUNT,
            type="kv",
            options={"version": "2"},
            description="SPIRA secrets (KV v2)",
            opts=opts,
        )
        kv = vault.kv.SecretBackendV2(
            f"{name}-kv-config", mount=mount.path, max_versions=layout.KV_MAX_VERSIONS, opts=opts
        )
        policies = {
            policy_name: vault.Policy(f"{name}-policy-{policy_name}", name=policy_name, policy=hcl, opts=opts)
            for policy_name, hcl in {**layout.policies(env), **layout.cluster_policies(env)}.items()
        }
        for role_name, params in layout.roles(env).items():
            wanted = [policies[p] for p in params["token_policies"]]  # type: ignore[union-attr]
            vault.jwt.AuthBackendRole(
                f"{name}-role-{role_name}",
                backend=jwt.path,
                role_name=role_name,
                **params,
                opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=wanted),
            )
        self._predict_clients(name, env, jwt, opts)
        # Operators (and `pulumi up` after the first configuration) log in through the identity provider.
        oidc = vault.jwt.AuthBackend(
            f"{name}-oidc",
            path=layout.OIDC_MOUNT,
            type="oidc",
            description="Operators, through the organisation's identity provider",
            oidc_discovery_url=args.settings.oidc_issuer,
            oidc_client_id=args.settings.oidc_client_id,
            oidc_client_secret=args.settings.oidc_client_secret,
            default_role=layout.operator_role_name(env),
            opts=opts,
        )
        for role_name, params in layout.oidc_roles(env).items():
            wanted = [policies[p] for p in params["token_policies"]]  # type: ignore[union-attr]
            vault.jwt.AuthBackendRole(
                f"{name}-oidc-role-{role_name}",
                backend=oidc.path,
                role_name=role_name,
                **params,
                opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=wanted),
            )
        for device, file_path in AUDIT_DEVICES.items():
            vault.Audit(
                f"{name}-audit" if device == "file" else f"{name}-audit-{device}",
                type="file",
                path=device,
                options={"file_path": file_path},
                opts=opts,
            )
        return VaultSecrets(provider=provider, mount=kv)

    def _predict_clients(
        self, name: str, env: str, jwt: vault.jwt.AuthBackend, opts: pulumi.ResourceOptions
    ) -> None:
        """The clients of /predict (infra/vault/clients.py, as the local stack applies it): the identity
        provider's issuer (Vault's in-cluster address), its signing key, a token role, policy and login
        role per client kind (auth/jwt for the gate and the intake, auth/approle for hospitals)."""
        vault.identity.Oidc(f"{name}-identity-issuer", issuer=ADDRESS.url, opts=opts)
        key = vault.identity.OidcKey(
            f"{name}-predict-key", name=clients.key_name(env), **clients.key(env), opts=opts
        )
        for role_name, params in clients.token_roles(env).items():
            vault.identity.OidcRole(
                f"{name}-predict-token-{role_name}",
                name=role_name,
                **{**params, "key": key.name},
                opts=opts,
            )
        policies = {
            policy_name: vault.Policy(f"{name}-policy-{policy_name}", name=policy_name, policy=hcl, opts=opts)
            for policy_name, hcl in clients.policies(env).items()
        }

        def after(params: dict[str, object]) -> pulumi.ResourceOptions:
            wanted = [policies[p] for p in params["token_policies"]]  # type: ignore[union-attr]
            return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=wanted))

        for role_name, params in clients.jwt_roles(env).items():
            vault.jwt.AuthBackendRole(
                f"{name}-role-{role_name}",
                backend=jwt.path,
                role_name=role_name,
                **params,
                opts=after(params),
            )
        approle = vault.AuthBackend(
            f"{name}-approle",
            type="approle",
            path=clients.APPROLE_MOUNT,
            description="Hospital apps outside the clusters: a secret ID per hospital (docs/runbooks/vault.md)",
            opts=opts,
        )
        for role_name, params in clients.approle_roles(env).items():
            vault.approle.AuthBackendRole(
                f"{name}-approle-{role_name}",
                backend=approle.path,
                role_name=role_name,
                **params,
                opts=after(params),
            )
