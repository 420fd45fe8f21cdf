from __future__ import annotations

from dataclasses import replace

import pytest

from spira.manifests import contracts, semantic
from tests.unit.manifests.helpers import docs, gate_job, model, one

POOL = contracts.gpu_pool()


def findings(rendered: list[dict], env: str = "staging") -> list[str]:
    out = semantic.all_rendered(rendered, POOL, contracts.vault(env)) + semantic.gate_thresholds(
        rendered, env
    )
    return [str(f) for f in out]


@pytest.mark.parametrize("env", ["local", "staging", "production"])
def test_the_rendered_environments_pass_every_semantic_check(env):
    assert findings(docs(env), env) == []


def test_a_service_whose_selector_matches_no_pod_is_caught():
    rendered = docs()
    one(rendered, "Service", "spira-model-preview")["spec"]["selector"] = {
        "app.kubernetes.io/name": "spira-modle"
    }
    assert any("[service-selector] Service/spira-model-preview" in f for f in findings(rendered))


def test_a_service_target_port_that_no_container_exposes_is_caught():
    rendered = docs()
    one(rendered, "Service", "spira-model-active")["spec"]["ports"][0]["targetPort"] = "metrics"
    assert any("targetPort 'metrics'" in f for f in findings(rendered))


def test_the_same_service_as_active_and_preview_is_caught():
    rendered = docs()
    one(rendered, "Rollout", "spira-model")["spec"]["strategy"]["blueGreen"]["previewService"] = (
        "spira-model-active"
    )
    assert any("activeService and previewService are both" in f for f in findings(rendered))


def test_a_reference_to_an_analysis_template_that_is_not_rendered_is_caught():
    rendered = docs()
    one(rendered, "Rollout", "spira-model")["spec"]["strategy"]["blueGreen"]["prePromotionAnalysis"][
        "templates"
    ][0]["templateName"] = "spira-gait"
    assert any("AnalysisTemplate 'spira-gait' is not rendered" in f for f in findings(rendered))


def test_a_required_analysis_arg_the_rollout_does_not_pass_is_caught():
    rendered = docs()
    pre = one(rendered, "Rollout", "spira-model")["spec"]["strategy"]["blueGreen"]["prePromotionAnalysis"]
    pre["args"] = [a for a in pre["args"] if a["name"] != "model-version"]
    assert any("needs args ['model-version']" in f for f in findings(rendered))


def test_an_analysis_arg_the_template_does_not_declare_is_caught():
    rendered = docs()
    pre = one(rendered, "Rollout", "spira-model")["spec"]["strategy"]["blueGreen"]["prePromotionAnalysis"]
    pre["args"].append({"name": "previewurl", "value": "x"})
    assert any("passes args ['previewurl']" in f for f in findings(rendered))


def test_a_template_using_an_undeclared_arg_is_caught():
    rendered = docs()
    gate_job(rendered)["spec"]["template"]["spec"]["containers"][0]["args"].append("{{args.users}}")
    assert any("uses {{args.users}} but does not declare it" in f for f in findings(rendered))


def test_a_metric_with_two_providers_is_caught():
    rendered = docs()
    metric = one(rendered, "AnalysisTemplate", "spira-error-rate")["spec"]["metrics"][0]
    metric["provider"]["job"] = gate_job(rendered)
    assert any("has 2 providers" in f for f in findings(rendered))


@pytest.mark.parametrize(
    "image",
    [
        "registry.spira.example.org/spira/model:1.0",
        "spira-model",
        "registry.spira.example.org/spira/model@sha256:abc",
    ],
)
def test_an_image_not_pinned_by_a_full_digest_is_caught(image):
    rendered = docs()
    model(rendered)["image"] = image
    assert any("[image-digest]" in f and image in f for f in findings(rendered))


def test_a_gate_image_by_tag_is_caught():
    rendered = docs()
    gate_job(rendered)["spec"]["template"]["spec"]["containers"][0]["image"] = "loadtest:latest"
    assert any("[image-digest]" in f and "container gate" in f for f in findings(rendered))


def test_a_tag_in_the_base_kustomization_images_is_caught():
    kustomization = contracts.base_kustomization()
    kustomization["images"][0]["newTag"] = "latest"
    assert [f.message for f in semantic.kustomization_images(kustomization)] == [
        "uses newTag; images are referenced by digest only"
    ]


@pytest.mark.parametrize(("probe", "path"), [("readinessProbe", "/healthz"), ("livenessProbe", "/readyz")])
def test_a_probe_on_the_wrong_endpoint_is_caught(probe, path):
    rendered = docs()
    model(rendered)[probe]["httpGet"]["path"] = path
    assert any(f"{probe} hits {path!r}" in f for f in findings(rendered))


def test_a_probe_on_a_port_the_container_does_not_expose_is_caught():
    rendered = docs()
    model(rendered)["readinessProbe"]["httpGet"]["port"] = 8080
    assert any("readinessProbe port 8080 is no container port" in f for f in findings(rendered))


def test_a_toleration_that_does_not_match_the_gpu_pool_taint_is_caught():
    rendered = docs()
    one(rendered, "Rollout", "spira-model")["spec"]["template"]["spec"]["tolerations"][0]["value"] = "yes"
    assert any("does not tolerate the GPU pool taint" in f for f in findings(rendered))


def test_the_gpu_pool_contract_is_read_from_infra_not_copied():
    moved = replace(POOL, label_value="gpu-a100")
    out = [str(f) for f in semantic.gpu_pool(docs(), moved)]
    assert out == [
        "[gpu-pool] Rollout/spira-model: nodeSelector lacks spira.dev/pool: gpu-a100",
        "[gpu-pool] AnalysisTemplate/spira-worker-gate metrics[0] job: nodeSelector lacks spira.dev/pool: gpu-a100",
        "[gpu-pool] Rollout/spira-worker spec.template: nodeSelector lacks spira.dev/pool: gpu-a100",
    ]


def test_a_model_pod_without_a_gpu_limit_is_caught():
    rendered = docs()
    for part in ("requests", "limits"):
        del model(rendered)["resources"][part][POOL.resource]
    assert any(f"has no {POOL.resource} limit" in f for f in findings(rendered))


@pytest.mark.parametrize(
    "extra",
    [{"name": "AWS_SECRET_ACCESS_KEY", "value": "x"}, {"name": "BENTOML_HOME", "value": "/home/bentoml"}],
)
def test_an_env_var_beyond_the_vault_three_is_caught(extra):
    rendered = docs()
    model(rendered)["env"].append(extra)
    assert any("[env]" in f and extra["name"] in f for f in findings(rendered))


def test_the_tls_override_may_carry_only_bentomls_ssl_settings():
    rendered = docs()
    (tls,) = [e for e in model(rendered)["env"] if e["name"] == "BENTOML_CONFIG_OPTIONS"]
    assert not any("[env]" in f for f in findings(rendered))
    tls["value"] += " services.spira.traffic.timeout=600"
    assert any("[env]" in f and "services.spira.ssl." in f for f in findings(rendered))


def test_a_secret_reader_may_trust_only_the_ca_beside_its_vault_token():
    rendered = docs()
    main = model(rendered)
    main["env"].append({"name": "SSL_CERT_FILE", "value": "/var/run/secrets/vault/ca.crt"})
    assert not any("[env]" in f for f in findings(rendered))
    main["env"][-1]["value"] = "/etc/ssl/certs/ca-certificates.crt"
    assert any("[env]" in f and "SSL_CERT_FILE" in f for f in findings(rendered))


def test_env_from_a_secret_is_caught():
    rendered = docs()
    model(rendered)["envFrom"] = [{"secretRef": {"name": "s3"}}]
    assert any("envFrom" in f for f in findings(rendered))


def test_the_vault_role_of_another_environment_is_caught():
    rendered = docs("production")
    next(e for e in model(rendered)["env"] if e["name"] == "VAULT_ROLE")["value"] = "spira-staging-serving"
    assert any(
        "VAULT_ROLE is 'spira-staging-serving'; infra/vault/layout.py says 'spira-production-serving'" in f
        for f in findings(rendered, "production")
    )


def test_a_projected_token_for_another_audience_is_caught():
    rendered = docs()
    volumes = one(rendered, "Rollout", "spira-model")["spec"]["template"]["spec"]["volumes"]
    next(v for v in volumes if v["name"] == "vault-token")["projected"]["sources"][0]["serviceAccountToken"][
        "audience"
    ] = "sts.amazonaws.com"
    assert any("audience 'vault'" in f for f in findings(rendered))


def _vault_volume(rendered: list[dict]) -> dict:
    volumes = one(rendered, "Rollout", "spira-model")["spec"]["template"]["spec"]["volumes"]
    return next(v for v in volumes if v["name"] == "vault-token")


def test_a_token_volume_without_vault_ca_beside_the_token_is_caught():
    rendered = docs()
    sources = _vault_volume(rendered)["projected"]["sources"]
    _vault_volume(rendered)["projected"]["sources"] = [s for s in sources if "configMap" not in s]
    assert any("no ConfigMap projected as ca.crt beside the token" in f for f in findings(rendered))


def test_vault_ca_from_another_config_map_than_declared_is_caught():
    rendered = docs()
    next(s for s in _vault_volume(rendered)["projected"]["sources"] if "configMap" in s)["configMap"][
        "name"
    ] = "other-ca"
    assert any("ca.crt comes from ConfigMap 'other-ca', not 'vault-ca'" in f for f in findings(rendered))


def test_the_ca_config_map_is_read_from_infra_not_copied():
    from infra.environments import declared

    assert (contracts.vault("staging").ca_configmap, contracts.vault("staging").ca_key) == (
        declared().vault_ca.configmap,
        declared().vault_ca.key,
    )


def test_the_token_volume_mounted_elsewhere_is_caught():
    rendered = docs()
    next(m for m in model(rendered)["volumeMounts"] if m["name"] == "vault-token")["mountPath"] = "/vault"
    assert any("is mounted at ['/vault'], not '/var/run/secrets/vault'" in f for f in findings(rendered))


def test_a_plain_http_vault_address_is_caught():
    rendered = docs("production")
    next(e for e in model(rendered)["env"] if e["name"] == "VAULT_ADDR")["value"] = "http://vault:8200"
    assert any("VAULT_ADDR 'http://vault:8200' is not https" in f for f in findings(rendered, "production"))


def test_a_writable_root_filesystem_is_caught():
    rendered = docs()
    model(rendered)["securityContext"]["readOnlyRootFilesystem"] = False
    assert any("readOnlyRootFilesystem is not true" in f for f in findings(rendered))


def test_bentoml_home_without_an_empty_dir_is_caught():
    rendered = docs()
    model(rendered)["volumeMounts"] = [
        m for m in model(rendered)["volumeMounts"] if m["mountPath"] != "/home/bentoml"
    ]
    assert any("/home/bentoml is not an emptyDir mount" in f for f in findings(rendered))


def test_an_archive_spool_on_an_empty_dir_is_caught():
    # an emptyDir is deleted with the pod: blue/green scale-down or an eviction loses answered uploads
    rendered = docs()
    spec = one(rendered, "Rollout", "spira-model")["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "archive-spool")
    del volume["persistentVolumeClaim"]
    volume["emptyDir"] = {}
    assert any(
        "[archive]" in f and "/var/spool/spira-archive is not a mount of a PersistentVolumeClaim" in f
        for f in findings(rendered)
    )


def test_an_archive_spool_claim_only_one_node_can_mount_is_caught():
    rendered = docs()
    one(rendered, "PersistentVolumeClaim", "spira-archive-spool")["spec"]["accessModes"] = ["ReadWriteOnce"]
    assert any(
        "PersistentVolumeClaim/spira-archive-spool" in f and "ReadWriteMany" in f for f in findings(rendered)
    )


def test_a_model_given_a_setting_as_an_environment_variable_is_caught():
    rendered = docs()
    model(rendered)["env"].append({"name": "SPIRA_ARCHIVE_SPOOL", "value": "/var/spool/spira-archive"})
    assert any(
        "[env]" in f and "only ['VAULT_ADDR', 'VAULT_ROLE', 'VAULT_SECRET_PATH']" in f
        for f in findings(rendered)
    )


def test_a_spool_volume_mounted_elsewhere_than_where_serving_spools_is_caught():
    rendered = docs()
    mount = next(m for m in model(rendered)["volumeMounts"] if m["mountPath"] == "/var/spool/spira-archive")
    mount["mountPath"] = "/data/spool"
    assert any(
        "/var/spool/spira-archive is not a mount of a PersistentVolumeClaim" in f for f in findings(rendered)
    )


def _uploader(rendered) -> dict:
    spec = one(rendered, "Rollout", "spira-model")["spec"]["template"]["spec"]
    return next(c for c in spec["initContainers"] if c["name"] == "uploader")


def test_the_rendered_model_pod_runs_the_archive_uploader_as_a_native_sidecar_and_passes():
    rendered = docs()
    uploader = _uploader(rendered)
    assert uploader["restartPolicy"] == "Always" and uploader["command"] == [
        "python",
        "-m",
        "serving.uploader",
    ]
    assert uploader["image"] == model(rendered)["image"]
    assert not [f for f in findings(rendered) if "uploader" in f]


def test_a_model_pod_without_the_archive_uploader_is_caught():
    # the server only writes the spool: without its uploader nothing answered is ever archived
    rendered = docs()
    spec = one(rendered, "Rollout", "spira-model")["spec"]["template"]["spec"]
    spec["initContainers"] = [c for c in spec["initContainers"] if c["name"] != "uploader"]
    assert any("[archive]" in f and "has no initContainer 'uploader'" in f for f in findings(rendered))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.pop("restartPolicy"), "is not a native sidecar"),
        (
            lambda c: c.update(image="registry.spira.example.org/spira/other@sha256:" + "0" * 64),
            "is not the model's",
        ),
        (
            lambda c: c.update(command=["python", "-m", "serving.worker"]),
            "does not run python -m serving.uploader",
        ),
        (lambda c: c["env"][1].update(value="spira-local-gate"), "VAULT_ROLE is 'spira-local-gate'"),
        (lambda c: c["volumeMounts"].pop(), "does not mount the model's volume at /var/spool/spira-archive"),
        (lambda c: c.update(ports=[{"containerPort": 9000}]), "declares ports"),
    ],
)
def test_an_archive_uploader_unlike_the_model_pods_own_is_caught(change, message):
    rendered = docs()
    change(_uploader(rendered))
    assert any(
        "[archive]" in f and "initContainer uploader" in f and message in f for f in findings(rendered)
    )


def test_a_retried_gate_job_is_caught():
    rendered = docs()
    gate_job(rendered)["spec"]["backoffLimit"] = 2
    assert any("backoffLimit is not 0" in f for f in findings(rendered))


def test_a_gate_job_without_a_deadline_is_caught():
    rendered = docs()
    del gate_job(rendered)["spec"]["activeDeadlineSeconds"]
    assert any("has no activeDeadlineSeconds" in f for f in findings(rendered))


def test_a_preview_url_that_is_not_the_preview_service_is_caught():
    rendered = docs()
    pre = one(rendered, "Rollout", "spira-model")["spec"]["strategy"]["blueGreen"]["prePromotionAnalysis"]
    pre["args"][0]["value"] = "http://spira-model-active.spira.svc.cluster.local:3000"
    assert any("[gate] Rollout/spira-model: preview-url" in f for f in findings(rendered))


def test_staging_thresholds_in_production_are_caught():
    rendered = docs("production")
    one(rendered, "AnalysisTemplate", "spira-gate")["spec"]["args"][2]["value"] = "staging"
    assert any("thresholds 'staging' are not 'production'" in f for f in findings(rendered, "production"))


@pytest.mark.parametrize("env", ["staging", "production"])
def test_each_cluster_asks_for_what_its_pulumi_stack_sized_the_gpu_pool_for(env):
    replicas, gpus = contracts.stack_sizes(env)
    assert semantic.stack_sizes(docs(env), POOL, replicas, gpus) == []
    assert semantic.stack_sizes(docs(env), POOL, replicas + 1, gpus) != []
