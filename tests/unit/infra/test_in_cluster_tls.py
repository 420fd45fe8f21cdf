"""In-cluster TLS as policies: cert-manager, pinned, issues from the platform CA (Vault's); the object
store's S3 API serves https only with its Certificate; the model's Certificate manifest, its Rollout and
every Certificate/ClusterIssuer the program creates pass the upstream CRD schemas strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from infra import contracts
from infra.components import certificates, object_store
from infra.offline import Plan
from spira.manifests import contracts as manifest_contracts
from spira.manifests import schemas
from spira.manifests.render import render_docs
from spira_core.tls import (
    BENTOML_OVERRIDE_ENV,
    SERVING_CERT,
    SERVING_KEY,
    SERVING_TLS_DIR,
    bentoml_ssl_options,
)
from tests.fakes.infra import where

REPO = Path(__file__).resolve().parents[3]
CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"
ISSUER = "kubernetes:cert-manager.io/v1:ClusterIssuer"
RELEASE = "kubernetes:helm.sh/v3:Release"
K8S = manifest_contracts.kubernetes_version()


def _cr(recorded) -> dict:
    inputs = recorded.inputs
    return {k: inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")}


def test_the_issuer_is_the_platform_ca_and_cert_manager_is_pinned(stack_plan: Plan) -> None:
    (issuer,) = stack_plan.of_type(ISSUER)
    assert schemas.validate(_cr(issuer), K8S) == [], where(issuer)
    assert issuer.inputs["spec"] == {"ca": {"secretName": certificates.CA_SECRET}}, where(issuer)
    ca = stack_plan.one("kubernetes:core/v1:Secret", "tls-ca")
    assert ca.inputs["metadata"] == {"name": certificates.CA_SECRET, "namespace": certificates.NAMESPACE}
    assert "stringData" in ca.secret_paths, where(ca)  # the CA's key makes the Secret secret in state
    vault_ca = stack_plan.one("tls:index/selfSignedCert:SelfSignedCert", "vault-ca")
    assert ca.inputs["stringData"]["tls.crt"] == vault_ca.state["certPem"], where(ca)
    release = stack_plan.one(RELEASE, certificates.RELEASE)
    pin = contracts.chart("cert-manager")
    assert (release.inputs["chart"], release.inputs["version"]) == (pin.chart, pin.version), where(release)
    assert release.inputs["values"]["crds"]["enabled"] is True


def test_the_object_store_serves_s3_over_https_with_a_certificate_for_its_service(stack_plan: Plan) -> None:
    (cert,) = [
        c for c in stack_plan.of_type(CERTIFICATE) if c.inputs["metadata"]["namespace"] == "objectstore"
    ]
    assert schemas.validate(_cr(cert), K8S) == [], where(cert)
    spec = cert.inputs["spec"]
    assert spec["issuerRef"]["name"] == certificates.ISSUER and spec["secretName"] == object_store.TLS_SECRET
    release = stack_plan.one(RELEASE, object_store.RELEASE)
    values = release.inputs["values"]
    if "s3" in values:  # SeaweedFS: -cert.file/-key.file on its one port, the Secret mounted there
        s3 = values["s3"]
        assert f"-cert.file={object_store.SEAWEEDFS_TLS_DIR}/tls.crt" in s3["extraArgs"], where(release)
        assert f"secretName: {object_store.TLS_SECRET}" in s3["extraVolumes"]
        assert f"mountPath: {object_store.SEAWEEDFS_TLS_DIR}" in s3["extraVolumeMounts"]
        assert s3["readinessProbe"]["scheme"] == s3["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
        service = "seaweedfs-s3"
    else:  # MinIO
        assert values["tls"] == {
            "enabled": True,
            "certSecret": object_store.TLS_SECRET,
            "publicCrt": "tls.crt",
            "privateKey": "tls.key",
        }, where(release)
        service = "objectstore"
    assert f"{service}.objectstore.svc.cluster.local" in spec["dnsNames"]


@pytest.mark.parametrize("engine", ["seaweedfs", "minio"])
def test_both_engines_render_their_tls_values(engine: str) -> None:
    body = object_store.s3_certificate({"seaweedfs": "seaweedfs-s3", "minio": "objectstore"}[engine])
    assert schemas.validate(body, K8S) == []
    broken = {**body, "spec": {**body["spec"], "dnsName": body["spec"]["dnsNames"]}}
    assert any("dnsName" in e.message for e in schemas.validate(broken, K8S))  # the schema is strict


def test_prometheus_mounts_the_platform_ca_its_https_scrape_trusts(stack_plan: Plan) -> None:
    release = stack_plan.one(RELEASE, "prometheus")
    (mount,) = release.inputs["values"]["server"]["extraConfigmapMounts"]
    jobs = yaml.safe_load((REPO / "infra" / "monitoring" / "scrape.yaml").read_text())["jobs"]
    assert {Path(j["cluster_ca_file"]).parent for j in jobs} == {Path(mount["mountPath"])}
    configmap = stack_plan.one("kubernetes:core/v1:ConfigMap", "monitoring-vault-ca")
    assert configmap.inputs["metadata"]["name"] == mount["configMap"] == "vault-ca", where(configmap)


@pytest.mark.parametrize("env", ["local", "staging", "production"])
def test_the_model_serves_https_with_its_certificate_in_every_environment(env: str) -> None:
    docs = render_docs(env)
    cert = schemas_checked(docs, "Certificate", "spira-model-tls")
    rollout = next(d for d in docs if d["kind"] == "Rollout" and d["metadata"]["name"] == "spira-model")
    pod = rollout["spec"]["template"]["spec"]
    (main,) = [c for c in pod["containers"] if c["name"] == "model"]
    env_vars = {e["name"]: e.get("value") for e in main["env"]}
    assert env_vars[BENTOML_OVERRIDE_ENV] == bentoml_ssl_options(SERVING_CERT, SERVING_KEY)
    (mount,) = [m for m in main["volumeMounts"] if m["mountPath"] == SERVING_TLS_DIR]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == cert["spec"]["secretName"]
    assert cert["spec"]["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "ClusterIssuer",
        "name": certificates.ISSUER,
    }
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert main[probe]["httpGet"]["scheme"] == "HTTPS", probe
    strategy = rollout["spec"]["strategy"]["blueGreen"]
    (preview,) = [a["value"] for a in strategy["prePromotionAnalysis"]["args"] if a["name"] == "preview-url"]
    host = preview.removeprefix("https://").split(":")[0]
    assert preview.startswith("https://") and host in cert["spec"]["dnsNames"]
    for service in (strategy["activeService"], strategy["previewService"]):
        assert f"{service}.spira.svc.cluster.local" in cert["spec"]["dnsNames"]


def schemas_checked(docs: list[dict], kind: str, name: str) -> dict:
    doc = next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
    assert schemas.validate(doc, K8S) == []
    return doc


def test_the_gate_trusts_the_platform_ca_beside_its_token_for_the_https_preview() -> None:
    docs = render_docs("local")
    template = next(
        d for d in docs if d["kind"] == "AnalysisTemplate" and d["metadata"]["name"] == "spira-gate"
    )
    job = template["spec"]["metrics"][0]["provider"]["job"]["spec"]["template"]["spec"]
    (gate,) = job["containers"]
    env = {e["name"]: e.get("value") for e in gate["env"]}
    mounts = {m["name"]: m["mountPath"] for m in gate["volumeMounts"]}
    assert env["SSL_CERT_FILE"] == f"{mounts['vault-token']}/ca.crt"


def test_the_nats_certificate_names_the_service_and_every_route_and_its_values_mount_it() -> None:
    body = certificates.nats_certificate("nats", "nats")
    assert schemas.validate(body, K8S) == []
    assert {"nats.nats.svc.cluster.local", "*.nats-headless.nats.svc.cluster.local"} <= set(
        body["spec"]["dnsNames"]
    )
    assert "client auth" in body["spec"]["usages"]  # the routes authenticate each other
    values = certificates.nats_tls_values()
    for block in (values["config"]["nats"]["tls"], values["config"]["cluster"]["tls"]):
        assert block == {"enabled": True, "secretName": body["spec"]["secretName"]}
    assert values["tlsCA"]["secretName"] == body["spec"]["secretName"]


def test_mlflow_and_the_backup_jobs_trust_the_platform_ca_for_the_https_object_store() -> None:
    from infra.components import backups, mlflow

    template = mlflow.agent_template("staging")
    assert f'export AWS_CA_BUNDLE="{mlflow.TOKEN_DIR}/ca.crt"' in template
    for snapshot in (True, False):
        script = backups.login_script(snapshot)
        assert f"cp {backups.TOKEN_DIR}/ca.crt {backups.CREDS_DIR}/mc/certs/CAs/" in script
