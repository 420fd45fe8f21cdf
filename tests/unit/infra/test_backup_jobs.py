"""The clusters' backup CronJobs, from the real program under mocks: Vault raft snapshots and the
patient-audio purge, each with its own service account, Vault role and key, strictly valid against the
Kubernetes schema, pods in the restricted profile that carry only the VAULT_* contract. Failures name the
resource's URN."""

from __future__ import annotations

import re

from infra import contracts
from infra.components.backups import CREDS_DIR, OUT_DIR, SCHEDULES, cron_job_manifest, login_script
from infra.environments import declared
from infra.offline import Plan
from infra.retention import retention
from infra.vault import layout
from spira.manifests import contracts as manifest_contracts
from spira.manifests.schemas import core_errors
from tests.fakes.infra import where

CRON_JOB = "kubernetes:batch/v1:CronJob"
ACCOUNT = "kubernetes:core/v1:ServiceAccount"


def jobs(p: Plan) -> dict:
    return {r.inputs["metadata"]["name"]: r for r in p.of_type(CRON_JOB)}


def pod(r) -> dict:
    return r.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_each_job_runs_as_its_own_service_account_with_no_kubernetes_api_token(stack_plan: Plan) -> None:
    found = jobs(stack_plan)
    assert set(found) == {layout.SERVICES[j].service_account for j in SCHEDULES}
    accounts = {a.inputs["metadata"]["name"]: a for a in stack_plan.of_type(ACCOUNT)}
    for name, job in found.items():
        spec = pod(job)
        assert spec["serviceAccountName"] == name and name in accounts, where(job)
        assert spec["automountServiceAccountToken"] is False, where(job)
        assert accounts[name].inputs["automountServiceAccountToken"] is False, where(accounts[name])
        assert job.inputs["metadata"]["namespace"] == declared().workload_namespace, where(job)


def test_the_cron_jobs_are_strictly_valid_kubernetes_objects(stack_plan: Plan) -> None:
    version = manifest_contracts.kubernetes_version()
    for job in jobs(stack_plan).values():
        doc = {"apiVersion": "batch/v1", "kind": "CronJob", **job.inputs}
        assert core_errors(doc, version) == [], where(job)
        assert doc["spec"]["concurrencyPolicy"] == "Forbid", where(job)


def test_strict_validation_is_not_vacuous_an_unknown_field_fails() -> None:
    doc = cron_job_manifest("vault-backup", "staging")
    pod_spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    pod_spec["initContainers"][0]["enviroment"] = []
    assert core_errors(doc, manifest_contracts.kubernetes_version())


def test_each_pod_carries_only_its_vault_contract_and_the_projected_token_with_the_ca(
    stack_plan: Plan,
) -> None:
    for job_name, job in ((j, jobs(stack_plan)[layout.SERVICES[j].service_account]) for j in SCHEDULES):
        spec = pod(job)
        (vault,) = spec["initContainers"]
        assert {e["name"]: e["value"] for e in vault["env"]} == {
            "VAULT_ADDR": declared().service("vault").url,
            "VAULT_ROLE": layout.role_name(stack_plan.stack, job_name),
            "VAULT_SECRET_PATH": layout.secret_ref(stack_plan.stack, job_name),
        }, where(job)
        assert not any("env" in c for c in spec["containers"]), f"{where(job)}: the S3 container gets no env"
        (token,) = [v for v in spec["volumes"] if v["name"] == "vault-token"]
        sources = token["projected"]["sources"]
        assert sources[0]["serviceAccountToken"]["audience"] == layout.AUDIENCE, where(job)
        assert sources[1]["configMap"]["name"] == declared().vault_ca.configmap, where(job)
        (creds,) = [v for v in spec["volumes"] if v["name"] == "creds"]
        assert creds["emptyDir"]["medium"] == "Memory", f"{where(job)}: the S3 key would reach a disk"


def test_every_container_runs_in_the_restricted_profile_from_a_pinned_image(stack_plan: Plan) -> None:
    pinned = {contracts.image("vault"), contracts.image("minio-mc")}
    for job in jobs(stack_plan).values():
        spec = pod(job)
        assert spec["securityContext"]["runAsNonRoot"] is True, where(job)
        for c in [*spec["initContainers"], *spec["containers"]]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True, where(
                job
            )
            assert sc["capabilities"] == {"drop": ["ALL"]}, where(job)
            assert c["image"] in pinned, f"{where(job)}: {c['image']} is not from infra/charts.yaml"
            assert c["resources"]["limits"]["memory"], where(job)


def test_the_backup_saves_a_raft_snapshot_and_copies_it_under_the_backups_vault_prefix(
    stack_plan: Plan,
) -> None:
    job = jobs(stack_plan)[layout.SERVICES["vault-backup"].service_account]
    spec = pod(job)
    script = spec["initContainers"][0]["command"][-1]
    assert script == login_script(snapshot=True)
    assert re.search(rf'vault operator raft snapshot save "{OUT_DIR}/', script), where(job)
    bucket = declared().buckets(stack_plan.stack)["backups_bucket"]
    assert spec["containers"][0]["args"][-4:] == [
        "cp",
        "--recursive",
        f"{OUT_DIR}/",
        f"store/{bucket}/vault/",
    ]


def test_the_purge_removes_only_uploads_older_than_the_declared_period(stack_plan: Plan) -> None:
    job = jobs(stack_plan)[layout.SERVICES["archive-purge"].service_account]
    spec = pod(job)
    assert "raft snapshot" not in spec["initContainers"][0]["command"][-1], where(job)
    audio = retention().patient_audio(stack_plan.stack)
    assert spec["containers"][0]["args"] == [
        "--config-dir",
        f"{CREDS_DIR}/mc",
        "rm",
        "--recursive",
        "--force",
        f"--older-than={audio.days}d",
        f"store/{audio.bucket}/uploads/",
    ], where(job)


def test_the_object_store_chart_versions_exactly_the_declared_buckets_and_never_the_archive(
    stack_plan: Plan,
) -> None:
    release = stack_plan.one("kubernetes:helm.sh/v3:Release", "objectstore")
    versioned = {b.bucket for b in retention().buckets(stack_plan.stack) if b.versioned}
    created = release.inputs["values"]["s3"]["createBuckets"]
    assert {b["name"] for b in created if b.get("versioning") == "Enabled"} == versioned, where(release)
    assert declared().buckets(stack_plan.stack)["archive_bucket"] not in versioned


def test_minio_gets_the_same_versioning() -> None:
    from infra.components.object_store import minio_values
    from infra.config import ObjectStoreSettings

    settings = ObjectStoreSettings(engine="minio", replicas=1, volume_size="1Gi", cpu="1", memory="1Gi")
    buckets = tuple(declared().buckets("production").values())
    versioned = frozenset(b.bucket for b in retention().buckets("production") if b.versioned)
    values = minio_values(settings, "gp3", buckets, versioned)
    assert {b["name"]: b["versioning"] for b in values["buckets"]} == {b: b in versioned for b in buckets}
