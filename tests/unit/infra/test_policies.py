"""Policy-style assertions over both stacks' offline plans; failures name the resource's URN."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from infra import contracts
from infra.components.aws.node_pools import GPU_AMI
from infra.offline import Plan, Recorded
from infra.policy import rules
from infra.vault import clients, layout
from tests.fakes.infra import plan, where

RELEASE = "kubernetes:helm.sh/v3:Release"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
BRANCHES = {"staging": "staging", "production": "main"}


def _env(p: Plan) -> str:
    return p.stack


def _stack_file(stack: str) -> dict:
    return yaml.safe_load((contracts.REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]


def _gpu_pool(p: Plan) -> Recorded:
    return p.one(NODE_GROUP, "spira-pools-gpu")


def _release(p: Plan, name: str) -> Recorded:
    return p.one(RELEASE, name)


# ------------------------------------------------------------------------------------------- GPU pool
def test_the_gpu_pool_is_tainted_and_labelled_as_infra_gpu_pool_yaml_says(stack_plan: Plan) -> None:
    pool = _gpu_pool(stack_plan)
    contract = yaml.safe_load((contracts.INFRA_DIR / "gpu_pool.yaml").read_text())
    assert {
        "key": contract["taint"]["key"],
        "value": contract["taint"]["value"],
        "effect": "NO_SCHEDULE",
    } in (pool.inputs["taints"]), f"{where(pool)} lacks the GPU taint"
    assert pool.inputs["labels"] == {contract["label"]["key"]: contract["label"]["value"]}, (
        f"{where(pool)} lacks the label the manifests select on"
    )


def test_the_gpu_pool_runs_the_nvidia_ami_on_the_configured_gpu_instance_types(stack_plan: Plan) -> None:
    pool = _gpu_pool(stack_plan)
    assert pool.inputs["amiType"] == GPU_AMI == "AL2023_x86_64_NVIDIA", f"{where(pool)} has no NVIDIA AMI"
    configured = _stack_file(stack_plan.stack)["spira-platform:gpuInstanceTypes"]
    assert pool.inputs["instanceTypes"] == configured, f"{where(pool)} ignores gpuInstanceTypes"
    assert all(t in contracts.GPUS_PER_INSTANCE for t in configured), (
        f"{where(pool)}: not a GPU instance type"
    )


def test_no_cpu_pool_carries_the_gpu_taint_or_label(stack_plan: Plan) -> None:
    system = stack_plan.one(NODE_GROUP, "spira-pools-system")
    assert not system.inputs.get("taints"), f"{where(system)} is tainted: system pods would not schedule"
    assert system.inputs["labels"].get("spira.dev/pool") != "gpu", f"{where(system)} would attract the model"


def test_the_gpu_pool_min_and_max_come_from_config_and_the_blue_green_rule(stack_plan: Plan) -> None:
    pool = _gpu_pool(stack_plan)
    cfg = _stack_file(stack_plan.stack)
    scaling = pool.inputs["scalingConfig"]
    assert scaling["minSize"] == cfg["spira-platform:gpuMinNodes"], f"{where(pool)} min differs from config"
    assert scaling["minSize"] <= scaling["desiredSize"] <= scaling["maxSize"], (
        f"{where(pool)} sizes out of order"
    )
    assert stack_plan.outputs["gpuMaxNodes"] == scaling["maxSize"]


def _worker_max_pods(stack: str) -> int:
    """Read here from the manifests themselves: the ScaledObject's maxReplicaCount plus the worker
    Rollout's canary maxSurge (the overlays patch neither today; worker_max_pods follows them if they do)."""
    base = contracts.REPO_ROOT / "argocd" / "base"
    scaled = yaml.safe_load((base / "worker-scaledobject.yaml").read_text())
    rollout = yaml.safe_load((base / "worker-rollout.yaml").read_text())
    return scaled["spec"]["maxReplicaCount"] + rollout["spec"]["strategy"]["canary"]["maxSurge"]


def test_the_gpu_pool_holds_both_colours_of_the_model_at_full_replicas_and_the_workers_at_their_most(
    stack_plan: Plan,
) -> None:
    pool = _gpu_pool(stack_plan)
    cfg = _stack_file(stack_plan.stack)
    replicas = cfg["spira-platform:modelReplicas"]
    workers = _worker_max_pods(stack_plan.stack)
    assert workers == contracts.worker_max_pods(stack_plan.stack) >= 1
    per_pod = 1  # gpusPerPod's default in Pulumi.yaml; the stack files do not override it
    assert "spira-platform:gpusPerPod" not in cfg
    gpus = min(contracts.GPUS_PER_INSTANCE[t] for t in pool.inputs["instanceTypes"])
    max_nodes = pool.inputs["scalingConfig"]["maxSize"]
    pods = 2 * replicas + workers  # blue and green at full replicas while KEDA runs every worker
    assert max_nodes * (gpus // per_pod) >= pods, (
        f"{where(pool)}: no room for blue/green and {workers} workers"
    )
    # and no more than that: one node less would not fit
    assert (max_nodes - 1) * (gpus // per_pod) < pods, f"{where(pool)}: larger than the pods need"


def test_an_overlay_that_raises_the_workers_maximum_raises_the_gpu_pools(tmp_path, monkeypatch) -> None:
    import shutil

    shutil.copytree(contracts.REPO_ROOT / "argocd", tmp_path / "argocd")
    overlay = tmp_path / "argocd" / "overlays" / "production"
    (overlay / "worker-scaledobject-patch.yaml").write_text(
        "- op: replace\n  path: /spec/maxReplicaCount\n  value: 12\n"
    )
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    kustomization["patches"].append(
        {
            "path": "worker-scaledobject-patch.yaml",
            "target": {
                "group": "keda.sh",
                "version": "v1alpha1",
                "kind": "ScaledObject",
                "name": "spira-worker",
            },
        }
    )
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    before = contracts.worker_max_pods("production")
    monkeypatch.setattr(contracts, "REPO_ROOT", tmp_path)
    assert contracts.worker_max_pods("production") == 12 + 1 == before - 4 + 12
    assert contracts.worker_max_pods("staging") == before  # the other overlay is untouched


def _overlay_patch(stack: str) -> dict[str, object]:
    patch = yaml.safe_load(
        (contracts.REPO_ROOT / "argocd" / "overlays" / stack / "model-rollout-patch.yaml").read_text()
    )
    return {op["path"]: op["value"] for op in patch if op["op"] == "replace"}


def test_the_gpu_pool_is_sized_for_the_replicas_the_overlay_deploys(stack_plan: Plan) -> None:
    overlay = _overlay_patch(stack_plan.stack)
    cfg = _stack_file(stack_plan.stack)
    assert overlay["/spec/replicas"] == cfg["spira-platform:modelReplicas"], (
        f"argocd/overlays/{stack_plan.stack} deploys {overlay['/spec/replicas']} replicas but the GPU pool of "
        f"{where(_gpu_pool(stack_plan))} is sized for {cfg['spira-platform:modelReplicas']}"
    )
    assert (
        int(overlay["/spec/template/spec/containers/0/resources/requests/nvidia.com~1gpu"]) == 1
    )  # gpusPerPod


def test_the_blue_green_maximum_is_arithmetic_on_replicas_and_gpus() -> None:
    assert contracts.blue_green_max_nodes(model_replicas=3, gpus_per_pod=1, gpus_per_node=1) == 6
    assert contracts.blue_green_max_nodes(model_replicas=3, gpus_per_pod=1, gpus_per_node=4) == 2
    assert contracts.blue_green_max_nodes(model_replicas=3, gpus_per_pod=2, gpus_per_node=4) == 3
    assert contracts.blue_green_max_nodes(model_replicas=1, gpus_per_pod=1, gpus_per_node=8) == 1
    # the workers ask GPUs too: 3 blue + 3 green + 5 workers on 1-GPU nodes
    assert contracts.blue_green_max_nodes(3, gpus_per_pod=1, gpus_per_node=1, worker_pods=5) == 11
    assert contracts.blue_green_max_nodes(3, gpus_per_pod=1, gpus_per_node=4, worker_pods=5) == 3
    with pytest.raises(contracts.ContractError, match="never fits"):
        contracts.blue_green_max_nodes(model_replicas=1, gpus_per_pod=2, gpus_per_node=1)


def test_gpu_instance_types_with_different_gpu_counts_cannot_share_a_pool() -> None:
    with pytest.raises(contracts.ContractError, match="different GPU counts"):
        contracts.gpus_per_node(("g5.xlarge", "g5.12xlarge"))
    with pytest.raises(contracts.ContractError, match="not known GPU instance types"):
        contracts.gpus_per_node(("m7i.large",))


def test_the_nvidia_device_plugin_runs_on_the_gpu_pool_and_only_there(stack_plan: Plan) -> None:
    release = _release(stack_plan, "nvidia-device-plugin")
    contract = contracts.gpu_pool()
    assert release.inputs["chart"] == "nvidia-device-plugin", f"{where(release)} is not the device plugin"
    assert release.inputs["values"]["nodeSelector"] == {contract.label_key: contract.label_value}, where(
        release
    )
    assert release.inputs["values"]["tolerations"] == [
        {
            "key": contract.taint.key,
            "operator": "Equal",
            "value": contract.taint.value,
            "effect": "NoSchedule",
        }
    ], f"{where(release)} does not tolerate the GPU taint"


# -------------------------------------------------------------------------------------------- charts
def test_every_helm_release_is_pinned_to_the_version_in_charts_yaml(stack_plan: Plan) -> None:
    pins = yaml.safe_load((contracts.INFRA_DIR / "charts.yaml").read_text())["charts"]
    by_chart = {v["chart"]: v for v in pins.values()}
    releases = stack_plan.of_type(RELEASE)
    # every pinned chart is installed, but for the object-store engine the stack did not choose
    assert {r.inputs["chart"] for r in releases} == set(by_chart) - {"minio"}
    for r in releases:
        pin = by_chart[r.inputs["chart"]]
        assert re.fullmatch(r"\d+\.\d+\.\d+", r.inputs["version"]), (
            f"{where(r)} floats: {r.inputs['version']!r}"
        )
        assert r.inputs["version"] == str(pin["version"]), f"{where(r)} is not at the pinned version"
        assert r.inputs["repositoryOpts"]["repo"] == pin["repo"], f"{where(r)} comes from another repository"


# ------------------------------------------------------------------------------------------------ Vault
def test_vault_is_ha_on_raft_with_tls_and_kms_auto_unseal(stack_plan: Plan) -> None:
    release = _release(stack_plan, "vault")
    values = release.inputs["values"]
    ha = values["server"]["ha"]
    assert ha["enabled"] is True and ha["raft"]["enabled"] is True, f"{where(release)} is not HA raft"
    assert values["global"]["tlsDisable"] is False, f"{where(release)} serves plain HTTP"
    config = ha["raft"]["config"]
    kms = stack_plan.one("aws:kms/key:Key", "spira-vault-unseal")
    assert 'seal "awskms"' in config, f"{where(release)} has no KMS auto-unseal"
    assert re.search(r'kms_key_id = "key-[0-9a-f]+"', config), (
        f"{where(release)} seal names no key of {where(kms)}"
    )
    assert 'storage "raft"' in config and config.count("retry_join") == ha["replicas"], where(release)
    assert "tls_cert_file" in config, f"{where(release)} listener has no certificate"


def test_production_vault_keeps_a_quorum_through_the_loss_of_a_peer(production: Plan) -> None:
    release = _release(production, "vault")
    assert release.inputs["values"]["server"]["ha"]["replicas"] >= 3, f"{where(release)}: no raft quorum"


def test_only_vaults_service_account_may_use_the_unseal_key(stack_plan: Plan) -> None:
    role = stack_plan.one("aws:iam/role:Role", "spira-vault-unseal")
    assert "system:serviceaccount:vault:vault" in role.inputs["assumeRolePolicy"], where(role)
    release = _release(stack_plan, "vault")
    sa = release.inputs["values"]["server"]["serviceAccount"]
    assert sa["name"] == "vault" and "eks.amazonaws.com/role-arn" in sa["annotations"], where(release)


def test_vault_policies_are_the_layouts_hcl_byte_for_byte(stack_plan: Plan) -> None:
    env = _env(stack_plan)
    got = {r.inputs["name"]: r.inputs["policy"] for r in stack_plan.of_type("vault:index/policy:Policy")}
    assert got == {**layout.policies(env), **layout.cluster_policies(env), **clients.policies(env)}


def test_vault_jwt_roles_are_the_layouts_roles(stack_plan: Plan) -> None:
    env = _env(stack_plan)
    roles = {
        r.inputs["roleName"]: r
        for r in stack_plan.of_type("vault:jwt/authBackendRole:AuthBackendRole")
        if r.inputs["backend"] == layout.JWT_MOUNT
    }
    assert set(roles) == set(layout.roles(env)) | set(clients.jwt_roles(env))
    for name, expected in {**layout.roles(env), **clients.jwt_roles(env)}.items():
        r = roles[name]
        assert r.inputs["backend"] == layout.JWT_MOUNT, where(r)
        assert r.inputs["boundAudiences"] == expected["bound_audiences"] == [layout.AUDIENCE], where(r)
        assert r.inputs["boundSubject"] == expected["bound_subject"], where(r)
        assert r.inputs["tokenPolicies"] == expected["token_policies"], where(r)
        assert r.inputs["tokenTtl"] == expected["token_ttl"], where(r)


def test_the_jwt_backend_trusts_exactly_the_clusters_token_issuer(stack_plan: Plan) -> None:
    backend = stack_plan.one("vault:jwt/authBackend:AuthBackend", "vault-jwt")
    issuer = stack_plan.outputs["oidcIssuer"]
    assert backend.inputs["path"] == layout.JWT_MOUNT, where(backend)
    assert backend.inputs["boundIssuer"] == issuer, f"{where(backend)} not bound to the cluster issuer"
    assert backend.inputs["oidcDiscoveryUrl"] == issuer, f"{where(backend)} discovers keys elsewhere"


def test_kv_v2_keeps_the_layouts_versions_and_audit_goes_to_a_file(stack_plan: Plan) -> None:
    mount = stack_plan.one("vault:index/mount:Mount", "vault-kv")
    assert (mount.inputs["path"], mount.inputs["type"], mount.inputs["options"]) == (
        layout.KV_MOUNT,
        "kv",
        {"version": "2"},
    ), where(mount)
    kv = stack_plan.one("vault:kv/secretBackendV2:SecretBackendV2", "vault-kv-config")
    assert kv.inputs["maxVersions"] == layout.KV_MAX_VERSIONS, where(kv)
    audit = stack_plan.one("vault:index/audit:Audit", "vault-audit")
    assert audit.inputs["type"] == "file", where(audit)
    assert audit.inputs["options"]["file_path"].endswith("/" + layout.AUDIT_LOG_FILE), where(audit)


def test_the_vault_provider_holds_no_token(stack_plan: Plan) -> None:
    provider = stack_plan.one("pulumi:providers:vault", "vault-provider")
    assert "token" not in provider.inputs, f"{where(provider)}: the token must come from VAULT_TOKEN"


# ----------------------------------------------------------------------------------------- Argo CD
def test_the_root_application_follows_the_stacks_branch_and_overlay(stack_plan: Plan) -> None:
    app = stack_plan.one("kubernetes:argoproj.io/v1alpha1:Application", "argo-root-app")
    source = app.inputs["spec"]["source"]
    assert source["targetRevision"] == BRANCHES[stack_plan.stack], f"{where(app)} tracks the wrong branch"
    assert source["path"] == f"argocd/overlays/{stack_plan.stack}", f"{where(app)} syncs the wrong overlay"
    assert app.inputs["metadata"]["name"] == f"spira-{stack_plan.stack}", where(app)
    assert app.inputs["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}, where(app)


def test_the_root_application_belongs_to_the_appproject_created_beside_it(stack_plan: Plan) -> None:
    app = stack_plan.one("kubernetes:argoproj.io/v1alpha1:Application", "argo-root-app")
    project = stack_plan.one("kubernetes:argoproj.io/v1alpha1:AppProject", "argo-project")
    assert app.inputs["spec"]["project"] == project.inputs["metadata"]["name"], where(app)
    assert project.inputs["spec"]["sourceRepos"] == [app.inputs["spec"]["source"]["repoURL"]], where(project)


# ---------------------------------------------------------------------------------------- object store
@pytest.mark.parametrize("stack", ["staging", "production"])
def test_minio_has_no_default_credentials(stack: str) -> None:
    p = plan(stack, objectStore="minio")
    release = _release(p, "objectstore")
    values = release.inputs["values"]
    assert release.inputs["chart"] == "minio", where(release)
    for key in ("rootUser", "rootPassword", "accessKey", "secretKey"):
        assert key not in values, f"{where(release)} sets {key} in its values"
    assert values["existingSecret"] == "objectstore-root", (
        f"{where(release)} would fall back to chart credentials"
    )
    assert values["svcaccts"] == [], f"{where(release)} creates default service accounts"
    # the only users are the program's static ones (Argo's artifact reader), never with a key in the values
    assert [u["policy"] for u in values["users"]] == [f"spira-{stack}-argo-artifacts"], where(release)
    assert all("secretKey" not in u and u["existingSecret"] for u in values["users"]), where(release)
    secret = p.one("kubernetes:core/v1:Secret", "objectstore-root")
    generated = {r.name: r for r in p.of_type("random:index/randomPassword:RandomPassword")}
    assert secret.inputs["stringData"] == {
        "rootUser": generated["objectstore-root-access-key"].state["result"],
        "rootPassword": generated["objectstore-root-secret-key"].state["result"],
    }, f"{where(secret)} does not carry the generated credentials"
    assert any(path.startswith("stringData") for path in secret.secret_paths), (
        f"{where(secret)} is not secret"
    )
    assert "minioadmin" not in str(values) + str(secret.inputs), f"{where(secret)} uses MinIO's default login"


@pytest.mark.parametrize("engine", ["minio", "seaweedfs"])
def test_the_object_store_root_credentials_are_stored_in_vault_at_the_objectstore_path(engine: str) -> None:
    p = plan("staging", objectStore=engine)
    secret = p.one("vault:kv/secretV2:SecretV2", "objectstore-vault-admin")
    assert secret.inputs["name"] == layout.secret_path("staging", "objectstore"), where(secret)
    assert secret.inputs["mount"] == layout.KV_MOUNT, where(secret)
    import json

    data = json.loads(secret.inputs["dataJson"])
    assert set(data) == set(layout.SERVICES["objectstore"].keys), (
        f"{where(secret)} has other keys than the layout"
    )


def test_the_object_store_engine_is_a_config_choice() -> None:
    assert _release(plan("staging"), "objectstore").inputs["chart"] == "seaweedfs"
    assert _release(plan("staging", objectStore="minio"), "objectstore").inputs["chart"] == "minio"


def test_minio_image_and_chart_are_pinned() -> None:
    release = _release(plan("production", objectStore="minio"), "objectstore")
    image = release.inputs["values"]["image"]
    assert image["tag"].startswith("RELEASE.") and image["tag"] != "latest", where(release)


# --------------------------------------------------------------------------------- storage, db, registry
def test_mlflows_database_is_encrypted_private_and_backed_up(stack_plan: Plan) -> None:
    db = stack_plan.one("aws:rds/instance:Instance", "spira-mlflow-db-db")
    assert db.inputs["storageEncrypted"] is True, f"{where(db)} is not encrypted at rest"
    assert db.inputs["publiclyAccessible"] is False, f"{where(db)} is reachable from the internet"
    assert db.inputs["backupRetentionPeriod"] >= 7 and db.inputs["deletionProtection"] is True, where(db)


def test_mlflow_reads_its_s3_credentials_from_vault_as_its_own_role(stack_plan: Plan) -> None:
    env = _env(stack_plan)
    deployment = stack_plan.one("kubernetes:apps/v1:Deployment", "mlflow-server")
    pod = deployment.inputs["spec"]["template"]
    notes = pod["metadata"]["annotations"]
    assert notes["vault.hashicorp.com/role"] == layout.role_name(env, "mlflow"), where(deployment)
    assert notes["vault.hashicorp.com/agent-inject-secret-s3.env"] == (
        f"{layout.KV_MOUNT}/data/{layout.secret_path(env, 'mlflow')}"
    ), where(deployment)
    assert pod["spec"]["serviceAccountName"] == layout.SERVICES["mlflow"].service_account, where(deployment)
    assert deployment.inputs["metadata"]["namespace"] == layout.NAMESPACE, where(deployment)
    token = pod["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == layout.AUDIENCE, f"{where(deployment)} token not meant for Vault"
    env_names = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
    assert not env_names & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, (
        f"{where(deployment)} has keys in env"
    )


def test_volumes_are_encrypted_by_the_default_storage_class(stack_plan: Plan) -> None:
    sc = stack_plan.one("kubernetes:storage.k8s.io/v1:StorageClass", "spira-gp3-encrypted")
    assert sc.inputs["parameters"]["encrypted"] == "true", where(sc)
    vault = _release(stack_plan, "vault")
    assert vault.inputs["values"]["server"]["dataStorage"]["storageClass"] == "gp3-encrypted", where(vault)


def test_the_registry_has_immutable_tags_and_scans_on_push(stack_plan: Plan) -> None:
    for repo in stack_plan.of_type("aws:ecr/repository:Repository"):
        assert repo.inputs["imageTagMutability"] == "IMMUTABLE", f"{where(repo)} allows retagging"
        assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}, f"{where(repo)} not scanned"


def test_kubernetes_secrets_are_envelope_encrypted(stack_plan: Plan) -> None:
    cluster = stack_plan.one("aws:eks/cluster:Cluster", "spira-cluster-eks")
    assert cluster.inputs["encryptionConfig"]["resources"] == ["secrets"], where(cluster)


# ----------------------------------------------------------------------------------------- config
SECRETISH = re.compile(r"(password|secret|token|credential|private|access.?key)", re.I)
CREDENTIAL_VALUE = re.compile(r"(AKIA[0-9A-Z]{16}|-----BEGIN|hvs\.[A-Za-z0-9]{20,}|^s\.[A-Za-z0-9]{20,}$)")


def _leaves(value: object, path: str = "") -> list[tuple[str, object]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}[{i}]")]
    return [(path, value)]


def _plain_secrets(config: dict) -> list[str]:
    """Config paths that look like a secret kept in plain text. A key declared `secret: true` with no
    value is a declaration (its value lives encrypted in the stack, under `secure`)."""
    declared = {
        key
        for key, decl in config.items()
        if isinstance(decl, dict) and decl.get("secret") is True and not {"default", "value"} & decl.keys()
    }
    return [
        path
        for path, value in _leaves(config)
        if not path.endswith(".secure")  # encrypted by Pulumi: allowed
        and path.split(".")[0] not in declared
        and (SECRETISH.search(path) or CREDENTIAL_VALUE.search(str(value)))
    ]


@pytest.mark.parametrize("name", ["Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.production.yaml"])
def test_no_secret_value_is_kept_in_plain_config(name: str) -> None:
    doc = yaml.safe_load((contracts.REPO_ROOT / name).read_text())
    assert _plain_secrets(doc.get("config") or {}) == [], (
        f"{name} keeps what looks like a secret in plain text"
    )


def test_the_no_secret_check_catches_a_plain_password(tmp_path: Path) -> None:
    doc = {"config": {"spira-platform:dbPassword": "hunter2", "aws:accessKey": "AKIAABCDEFGHIJKLMNOP"}}
    assert _plain_secrets(doc["config"]) == ["spira-platform:dbPassword", "aws:accessKey"]
    # a secret declaration is fine, but not one that carries its value in plain text
    declared = {"clientSecret": {"type": "string", "secret": True}}
    assert _plain_secrets(declared) == []
    assert _plain_secrets({"clientSecret": {"secret": True, "default": "hunter2"}}) == [
        "clientSecret.secret",
        "clientSecret.default",
    ]


# ----------------------------------------------------------------------------------------- CrossGuard
def test_the_crossguard_rules_find_nothing_in_either_stack(stack_plan: Plan) -> None:
    violations = [
        f"{where(r)} {rule}: {msg}"
        for r in stack_plan.resources
        if r.custom
        for rule, msg in rules.check(r.type, r.inputs, stack_plan.stack)
    ]
    assert violations == []


# ------------------------------------------------------------------------------------ node autoscaling
def _tags(r: Recorded) -> dict[str, str]:
    return r.state.get("tags") or r.inputs.get("tags") or {}


def test_a_pool_whose_min_and_max_differ_is_scaled_by_the_cluster_autoscaler(stack_plan: Plan) -> None:
    cluster = stack_plan.one("aws:eks/cluster:Cluster", "spira-cluster-eks").state["name"]
    releases = [r for r in stack_plan.of_type(RELEASE) if r.inputs["chart"] == "cluster-autoscaler"]
    for pool in stack_plan.of_type(NODE_GROUP):
        scaling = pool.inputs["scalingConfig"]
        if scaling["minSize"] == scaling["maxSize"]:
            continue
        assert len(releases) == 1, f"{where(pool)} may grow from {scaling['minSize']} but nothing scales it"
        values = releases[0].inputs["values"]
        assert values["autoDiscovery"]["clusterName"] == cluster, (
            f"{where(releases[0])} discovers another cluster"
        )
        tags = _tags(pool)
        assert tags.get("k8s.io/cluster-autoscaler/enabled") == "true", f"{where(pool)} is not discoverable"
        assert tags.get(f"k8s.io/cluster-autoscaler/{cluster}") == "owned", (
            f"{where(pool)} is not this cluster's"
        )


def test_the_cluster_autoscaler_acts_with_its_own_role_that_may_scale_only_this_clusters_groups(
    stack_plan: Plan,
) -> None:
    import json

    cluster = stack_plan.one("aws:eks/cluster:Cluster", "spira-cluster-eks").state["name"]
    role = stack_plan.one("aws:iam/role:Role", "spira-cluster-autoscaler")
    assert "system:serviceaccount:kube-system:cluster-autoscaler" in role.inputs["assumeRolePolicy"], where(
        role
    )
    release = next(r for r in stack_plan.of_type(RELEASE) if r.inputs["chart"] == "cluster-autoscaler")
    sa = release.inputs["values"]["rbac"]["serviceAccount"]
    assert (
        sa["name"] == "cluster-autoscaler"
        and sa["annotations"]["eks.amazonaws.com/role-arn"] == (role.state["arn"])
    ), f"{where(release)} does not run as {where(role)}"
    policy = stack_plan.one("aws:iam/rolePolicy:RolePolicy", "cluster-autoscaler-scale")
    statements = json.loads(policy.inputs["policy"])["Statement"]
    for s in statements:
        writes = [a for a in s["Action"] if not a.split(":")[1].startswith(("Describe", "Get"))]
        if writes:
            assert s["Condition"] == {
                "StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster}": "owned"}
            }, f"{where(policy)} lets {writes} act on groups of other clusters"
        assert not any(a.endswith("*") for a in s["Action"]), f"{where(policy)} grants a wildcard action"
    attached = [
        r for r in stack_plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if r.inputs["role"] == role.state.get("name")
    ]  # fmt: skip
    assert attached == [], f"{where(role)} carries managed policies beyond its own"


def test_the_autoscaler_policy_test_fails_for_a_growable_pool_without_an_autoscaler(stack_plan: Plan) -> None:
    without = Plan(stack_plan.stack, [r for r in stack_plan.resources if r.name != "cluster-autoscaler"])
    gpu = _gpu_pool(without)
    assert gpu.inputs["scalingConfig"]["minSize"] != gpu.inputs["scalingConfig"]["maxSize"]
    with pytest.raises(AssertionError, match="nothing scales it"):
        test_a_pool_whose_min_and_max_differ_is_scaled_by_the_cluster_autoscaler(without)


# ------------------------------------------------------------------------------------ monitoring, CA
def test_the_prometheus_the_rollout_queries_is_installed_where_the_declaration_says(stack_plan: Plan) -> None:
    from infra.environments import declared

    address = declared().service("prometheus")
    release = _release(stack_plan, "prometheus")
    assert (release.inputs["chart"], release.inputs["namespace"]) == ("prometheus", address.namespace), where(
        release
    )
    assert release.inputs["values"]["server"]["service"]["servicePort"] == address.port, where(release)
    assert stack_plan.outputs["prometheusAddress"] == address.url


def test_every_workload_namespace_holds_the_vault_ca_as_a_configmap(stack_plan: Plan) -> None:
    from infra.environments import declared

    table = declared()
    ca = stack_plan.one("tls:index/selfSignedCert:SelfSignedCert", "vault-ca").state["certPem"]
    namespaces = {
        r.inputs["metadata"]["namespace"]
        for r in stack_plan.resources
        if r.type in ("kubernetes:apps/v1:Deployment", "kubernetes:core/v1:ServiceAccount")
    } | {table.workload_namespace}
    maps = {
        r.inputs["metadata"]["namespace"]: r
        for r in stack_plan.of_type("kubernetes:core/v1:ConfigMap")
        if r.inputs["metadata"]["name"] == table.vault_ca.configmap
    }
    # and Prometheus's namespace: it scrapes the model pods over https, trusting that CA only
    assert set(maps) == namespaces | {table.service("prometheus").namespace}
    for cm in maps.values():
        assert cm.inputs["data"] == {table.vault_ca.key: ca}, f"{where(cm)} is not Vault's CA"


# ------------------------------------------------------------------------------------ operator login
def test_operators_log_in_through_oidc_as_the_role_the_runbook_names(stack_plan: Plan) -> None:
    env = _env(stack_plan)
    backend = stack_plan.one("vault:jwt/authBackend:AuthBackend", "vault-oidc")
    assert (backend.inputs["type"], backend.inputs["path"]) == ("oidc", layout.OIDC_MOUNT), where(backend)
    assert backend.inputs["defaultRole"] == f"spira-{env}-operator", where(backend)
    assert "oidcClientSecret" in {p.split(".")[0] for p in backend.secret_paths}, (
        f"{where(backend)} does not keep the client secret secret"
    )
    runbook = (contracts.REPO_ROOT / "docs" / "runbooks" / "vault.md").read_text()
    assert "vault login -method=oidc" in runbook and "role=spira-staging-operator" in runbook
    roles = {
        r.inputs["roleName"]: r
        for r in stack_plan.of_type("vault:jwt/authBackendRole:AuthBackendRole")
        if r.inputs["backend"] == layout.OIDC_MOUNT
    }
    operator = roles[f"spira-{env}-operator"]
    local = layout.operator_roles(env)[f"spira-{env}-operator"]
    # the same role as the local stack's, bound to the identity provider's group instead of a subject
    assert operator.inputs["roleType"] == "oidc", where(operator)
    assert operator.inputs["tokenPolicies"] == local["token_policies"], where(operator)
    assert (operator.inputs["tokenTtl"], operator.inputs["tokenMaxTtl"]) == (
        local["token_ttl"],
        local["token_max_ttl"],
    ), where(operator)
    assert operator.inputs["boundClaims"] == {"groups": f"spira-{env}-operators"}, (
        f"{where(operator)} is open"
    )


def test_pulumi_up_after_the_first_configuration_needs_no_root_token(stack_plan: Plan) -> None:
    env = _env(stack_plan)
    role = next(
        r
        for r in stack_plan.of_type("vault:jwt/authBackendRole:AuthBackendRole")
        if r.inputs["roleName"] == f"spira-{env}-pulumi"
    )
    assert role.inputs["tokenPolicies"] == [f"spira-{env}-pulumi"], where(role)
    assert role.inputs["boundClaims"] == {"groups": f"spira-{env}-platform"}, f"{where(role)} is open"
    policy = next(
        r
        for r in stack_plan.of_type("vault:index/policy:Policy")
        if r.inputs["name"] == f"spira-{env}-pulumi"
    )
    paths = set(re.findall(r'path "([^"]+)"', policy.inputs["policy"]))
    # every path the program writes through pulumi-vault is granted ...
    for needed in (
        f"sys/auth/{layout.JWT_MOUNT}",
        f"sys/auth/{layout.OIDC_MOUNT}",
        f"sys/mounts/{layout.KV_MOUNT}",
        f"sys/policies/acl/spira-{env}-*",
        f"auth/{layout.JWT_MOUNT}/role/spira-{env}-*",
        f"auth/{layout.OIDC_MOUNT}/role/spira-{env}-*",
        "sys/audit/file",
        f"{layout.KV_MOUNT}/data/{layout.secret_path(env, 'objectstore')}",
    ):
        assert needed in paths, f"{where(policy)} does not grant {needed}"
    # ... and nothing beyond this environment: no wildcard root, no other environment's names
    others = [e for e in layout.ENVIRONMENTS if e != env]
    assert not any(p in ("*", "sys/*", "secret/*") for p in paths), f"{where(policy)} grants everything"
    assert not any(f"-{o}-" in p or f"/{o}/" in p for p in paths for o in others), (
        f"{where(policy)} reaches another environment"
    )


# ----------------------------------------------------------------------------------------------- MLflow
def test_mlflow_answers_only_authenticated_users_with_a_generated_admin_password(stack_plan: Plan) -> None:
    import configparser

    deployment = stack_plan.one("kubernetes:apps/v1:Deployment", "mlflow-server")
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    assert "--app-name basic-auth" in container["command"][-1], f"{where(deployment)} serves without login"
    env = {e["name"]: e.get("value") for e in container["env"]}
    secret = stack_plan.one("kubernetes:core/v1:Secret", "mlflow-auth")
    mounted = {m["mountPath"] for m in container["volumeMounts"] if m["name"] == "auth"}
    assert env["MLFLOW_AUTH_CONFIG_PATH"].rsplit("/", 1)[0] in mounted, f"{where(deployment)} reads no config"
    assert any(p.startswith("stringData") for p in secret.secret_paths), f"{where(secret)} is not secret"
    ini = configparser.ConfigParser()
    ini.read_string(secret.inputs["stringData"]["basic_auth.ini"])
    password = stack_plan.one("random:index/randomPassword:RandomPassword", "mlflow-admin-password")
    assert ini["mlflow"]["admin_password"] == password.state["result"], (
        f"{where(secret)}: not the generated one"
    )
    assert ini["mlflow"]["default_permission"] == "NO_PERMISSIONS", f"{where(secret)} lets any user read"
    # users live in the backend store's database, shared by every replica (never a per-pod SQLite file)
    assert ini["mlflow"]["database_uri"].startswith("postgresql://"), f"{where(secret)} keeps users per pod"


def test_mlflow_admits_only_the_training_jobs(stack_plan: Plan) -> None:
    from infra.environments import declared

    # rendered from infra/environments.yaml `network` (infra/components/network.py)
    policy = stack_plan.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "network-spira-mlflow")
    deployment = stack_plan.one("kubernetes:apps/v1:Deployment", "mlflow-server")
    spec = policy.inputs["spec"]
    selected = spec["podSelector"]["matchLabels"].items()
    assert selected <= deployment.inputs["spec"]["selector"]["matchLabels"].items(), where(policy)
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}, f"{where(policy)} leaves a direction open"
    (ingress,) = spec["ingress"]
    training = declared().network["workloads"]["training"]["labels"]
    assert ingress["from"] == [{"podSelector": {"matchLabels": training}}], f"{where(policy)} admits others"
    assert ingress["ports"] == [{"port": declared().service("mlflow").port, "protocol": "TCP"}], where(policy)
    open_egress = [
        rule
        for rule in spec["egress"]
        for peer in rule["to"]
        if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"
    ]
    assert open_egress == [], f"{where(policy)} may reach the internet or instance metadata"
