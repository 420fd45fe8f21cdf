"""The Pulumi program: read the stack's config, create the components, export what operators need."""

import sys
from pathlib import Path

# The engine runs this directory as a script (Pulumi.yaml `main: infra/`); the components import the
# `infra` package, so its parent (the repository root) must be importable.
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi

from infra import config
from infra.components import vault as vault_component
from infra.components.admission import Admission
from infra.components.argo import Argo, ArgoArgs
from infra.components.aws import AwsPlatform, AwsPlatformArgs
from infra.components.backups import BackupJobs, BackupJobsArgs
from infra.components.certificates import PlatformTls, PlatformTlsArgs
from infra.components.device_plugin import DevicePlugin, DevicePluginArgs
from infra.components.mlflow import Mlflow, MlflowArgs
from infra.components.monitoring import Monitoring, MonitoringArgs
from infra.components.network import NetworkPolicies, NetworkPoliciesArgs
from infra.components.object_store import ObjectStore, ObjectStoreArgs, StaticUser
from infra.components.queue import Queue, QueueArgs
from infra.components.workflows import Workflows, WorkflowsArgs
from infra.components.workloads import Workloads, WorkloadsArgs
from infra.workflows import ARTIFACT_READER, artifact_grants, artifact_user

cfg = config.load()

cloud = AwsPlatform(
    "spira",
    AwsPlatformArgs(
        config=cfg,
        vault_namespace=vault_component.NAMESPACE,
        vault_service_account=vault_component.SERVICE_ACCOUNT,
    ),
)
platform = cloud.platform
on_cluster = pulumi.ResourceOptions(providers={"kubernetes": platform.kube_provider})

DevicePlugin("nvidia-device-plugin", DevicePluginArgs(gpu_pool=platform.gpu_pool), on_cluster)
# Pods run SPIRA images only as CI signed and tested them (Kyverno verifyImages, infra/admission/).
admission = Admission("kyverno", on_cluster)
vault = vault_component.Vault(
    "vault",
    vault_component.VaultArgs(
        environment=cfg.environment,
        settings=cfg.vault,
        unseal=platform.unseal,
        oidc_issuer=platform.oidc_issuer,
        storage_class=platform.storage_class,
    ),
    on_cluster,
)
workloads = Workloads("workloads", WorkloadsArgs(vault_ca_pem=vault.ca_cert_pem), on_cluster)
# In-cluster TLS: cert-manager issues /predict's, S3's and NATS's certificates from Vault's CA.
tls = PlatformTls(
    "tls", PlatformTlsArgs(ca_cert_pem=vault.ca_cert_pem, ca_key_pem=vault.ca_key_pem), on_cluster
)
monitoring = Monitoring(
    "monitoring",
    MonitoringArgs(
        storage_class=platform.storage_class,
        volume_size=cfg.prometheus_volume_size,
        platform_ca_pem=vault.ca_cert_pem,
    ),
    on_cluster,
)
store = ObjectStore(
    "objectstore",
    ObjectStoreArgs(
        environment=cfg.environment,
        settings=cfg.object_store,
        storage_class=platform.storage_class,
        secrets=vault.secrets,
        tls=tls,
        # Argo Workflows' artifact repository reads the labelled data with its own key (infra/workflows.py)
        static_users=(
            StaticUser(ARTIFACT_READER, artifact_user(cfg.environment), artifact_grants(cfg.environment)),
        ),
    ),
    on_cluster,
)
mlflow = Mlflow(
    "mlflow",
    MlflowArgs(
        environment=cfg.environment,
        settings=cfg.mlflow,
        database=platform.database,
        vault_ca_pem=vault.ca_cert_pem,
        namespace=workloads.namespace,
        secrets=vault.secrets,
    ),
    on_cluster,
)
argo = Argo("argo", ArgoArgs(cfg.environment, cfg.repo_url, cfg.domain), on_cluster)
# Vault raft snapshots and the patient-audio purge, on schedules (docs/runbooks/backup.md).
BackupJobs("backups", BackupJobsArgs(cfg.environment, depends_on=[workloads, store]), on_cluster)
queue = Queue(
    "queue",
    QueueArgs(
        environment=cfg.environment,
        storage_class=platform.storage_class,
        volume_size=cfg.nats_volume_size,
        secrets=vault.secrets,  # the NATS users' passwords also go to Vault's nats-users
        tls=tls,  # TLS on the client port and the routes, from the platform CA
    ),
    on_cluster,
)

# Continuous training: Argo Workflows + Argo Events and the identities of the rendered workflow (docs/workflows.md).
workflows = Workflows(
    "workflows",
    WorkflowsArgs(
        cfg.environment,
        cfg.object_store.engine,
        artifact_key=store.static_keys[ARTIFACT_READER],
        platform_ca_pem=vault.ca_cert_pem,
        repo_url=cfg.repo_url,
        dispatch_token=cfg.candidate_dispatch_token,
        secrets=vault.secrets,  # the candidate step's GitHub credential goes to Vault's candidate-dispatch
    ),
    pulumi.ResourceOptions(providers={"kubernetes": platform.kube_provider}, depends_on=[workloads, store]),
)

# Default deny in every namespace the program owns (the services' and the controllers'), and the flows
# infra/environments.yaml declares (the workload namespace's own default deny and its workloads' policies are
# argocd/base's); after the components that create those namespaces.
NetworkPolicies(
    "network",
    NetworkPoliciesArgs(engine=cfg.object_store.engine, vpc_cidr=cfg.vpc_cidr),
    pulumi.ResourceOptions(
        providers={"kubernetes": platform.kube_provider},
        depends_on=[vault, workloads, monitoring, store, mlflow, queue, tls, admission, argo, workflows],
    ),
)

pulumi.export("clusterName", platform.cluster_name)
pulumi.export("oidcIssuer", platform.oidc_issuer)
pulumi.export("gpuMaxNodes", cloud.pools.gpu_max_nodes)
pulumi.export("registryUrls", platform.registry_urls)
pulumi.export("objectStoreEndpoint", store.endpoint)
pulumi.export("mlflowTrackingUri", mlflow.tracking_uri)
pulumi.export("prometheusAddress", monitoring.address)
pulumi.export("natsAddress", queue.address)
pulumi.export("vaultCaCertPem", vault.ca_cert_pem)
pulumi.export("kubeconfig", pulumi.Output.secret(cloud.network.kubeconfig))
