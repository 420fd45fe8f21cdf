"""The rendered Rollout/gate pod templates as `podman kube play` Pods: what is kept, what is dropped."""

from __future__ import annotations

import copy

import pytest
import yaml

from ci.kube_play import (
    GPU_RESOURCE,
    KubePlayError,
    find,
    gate_pod,
    model_pod,
    readiness_path,
    substitute,
    with_port,
)
from spira.manifests.render import render_docs
from spira_core.tls import (
    BENTOML_OVERRIDE_ENV,
    SERVING_CERT,
    SERVING_KEY,
    SERVING_TLS_DIR,
    bentoml_ssl_options,
)

MODEL_REF = "127.0.0.1:5000/spira/model@sha256:" + "ab" * 32
LOADTEST_REF = "127.0.0.1:5000/spira/loadtest@sha256:" + "cd" * 32
CMD = ["bentoml", "serve", "/opt/bento", "--port", "3000", "--host", "0.0.0.0"]


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return render_docs("local")


def rendered_template(docs) -> dict:
    return copy.deepcopy(find(docs, "Rollout", "spira-model")["spec"]["template"])


@pytest.fixture()
def model(docs):
    return model_pod(
        docs,
        name="spira-kp",
        image=MODEL_REF,
        image_cmd=CMD,
        port=41234,
        token_dir="/tmp/tok",
        vault_port=28200,
    )


def test_the_model_pod_drops_exactly_the_gpu_scheduling_ports_spool_claim_and_serving_tls(docs, model):
    pod, dropped = model
    assert sorted(dropped) == sorted(
        [
            "spec.nodeSelector",
            "spec.tolerations",
            f"containers[model].resources.requests.{GPU_RESOURCE}",
            f"containers[model].resources.limits.{GPU_RESOURCE}",
            "containers[model].ports",
            "volumes[archive-spool].persistentVolumeClaim (an emptyDir here)",
            f"containers[model].env[{BENTOML_OVERRIDE_ENV}] (TLS; plain HTTP here)",
            "volumes[serving-tls] and its mount (the Certificate's Secret)",
            "containers[model].startupProbe.httpGet.scheme",
            "containers[model].readinessProbe.httpGet.scheme",
            "containers[model].livenessProbe.httpGet.scheme",
            "initContainers[uploader] (a native sidecar) -> containers",
        ]
    )
    spec, rendered = pod["spec"], rendered_template(docs)["spec"]
    assert "nodeSelector" not in spec and "tolerations" not in spec
    container = spec["containers"][0]
    assert "ports" not in container
    # The rest of the resources is the manifest's.
    for part in ("requests", "limits"):
        expected = {
            k: v for k, v in rendered["containers"][0]["resources"][part].items() if k != GPU_RESOURCE
        }
        assert container["resources"][part] == expected and GPU_RESOURCE not in container["resources"][part]


def test_the_model_pod_keeps_env_security_probes_volumes_and_metadata_unchanged(docs, model):
    pod, _ = model
    template = rendered_template(docs)
    rendered, spec = template["spec"], pod["spec"]
    main, rmain = spec["containers"][0], rendered["containers"][0]
    assert spec["securityContext"] == rendered["securityContext"]
    assert spec["securityContext"]["runAsUser"] == 10001
    assert main["securityContext"] == rmain["securityContext"]
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    # The probes are the manifest's over plain HTTP (the local stack's; the manifest's are HTTPS).
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert rmain[probe]["httpGet"].pop("scheme") == "HTTPS"
        assert main[probe] == rmain[probe]
    assert readiness_path(pod) == "/readyz"
    tls_mount = {"name": "serving-tls", "mountPath": SERVING_TLS_DIR, "readOnly": True}
    assert main["volumeMounts"] == [m for m in rmain["volumeMounts"] if m != tls_mount]
    assert tls_mount in rmain["volumeMounts"]
    assert main["imagePullPolicy"] == rmain["imagePullPolicy"] == "Always"
    for key in ("serviceAccountName", "automountServiceAccountToken", "terminationGracePeriodSeconds"):
        assert spec[key] == rendered[key]
    volumes = {v["name"]: v for v in spec["volumes"]}
    for v in rendered["volumes"]:
        if "persistentVolumeClaim" in v:  # the cluster's shared spool: the one local pod's emptyDir
            assert volumes[v["name"]] == {"name": v["name"], "emptyDir": {}}
        elif v["name"] == "serving-tls":
            assert v["secret"]["secretName"] == "spira-model-tls" and v["name"] not in volumes
        elif v["name"] != "vault-token":
            assert volumes[v["name"]] == v and "emptyDir" in v
    assert pod["metadata"]["labels"] == template["metadata"]["labels"]
    assert pod["metadata"]["annotations"] == template["metadata"]["annotations"]
    assert pod["kind"] == "Pod" and pod["metadata"]["name"] == "spira-kp"
    # Env: the same three names; ROLE and SECRET_PATH unchanged, VAULT_ADDR only on the test Vault's port.
    env = {e["name"]: e["value"] for e in main["env"]}
    renv = {e["name"]: e["value"] for e in rmain["env"]}
    assert list(env) == ["VAULT_ADDR", "VAULT_ROLE", "VAULT_SECRET_PATH"]
    assert list(renv) == [*env, BENTOML_OVERRIDE_ENV]
    assert renv[BENTOML_OVERRIDE_ENV] == bentoml_ssl_options(SERVING_CERT, SERVING_KEY)
    assert env["VAULT_ROLE"] == renv["VAULT_ROLE"] and env["VAULT_SECRET_PATH"] == renv["VAULT_SECRET_PATH"]
    assert renv["VAULT_ADDR"] == "https://127.0.0.1:8200" and env["VAULT_ADDR"] == "https://127.0.0.1:28200"


def test_the_archive_uploader_sidecar_runs_beside_the_model_in_the_same_image_on_the_same_spool(docs, model):
    # podman 4.3 has no native sidecars: the uploader becomes an ordinary container after the model
    pod, _ = model
    spec, rendered = pod["spec"], rendered_template(docs)["spec"]
    assert "initContainers" not in spec and [c["name"] for c in spec["containers"]] == ["model", "uploader"]
    uploader, rup = (
        spec["containers"][1],
        next(c for c in rendered["initContainers"] if c["name"] == "uploader"),
    )
    assert rup.pop("restartPolicy") == "Always" and "restartPolicy" not in uploader
    assert uploader["image"] == spec["containers"][0]["image"] == MODEL_REF
    for key in ("command", "workingDir", "securityContext", "volumeMounts", "resources"):
        assert uploader[key] == rup[key]
    env = {e["name"]: e["value"] for e in uploader["env"]}
    assert env == {**{e["name"]: e["value"] for e in rup["env"]}, "VAULT_ADDR": "https://127.0.0.1:28200"}
    spool = [
        m["name"]
        for c in spec["containers"]
        for m in c["volumeMounts"]
        if m["mountPath"] == "/var/spool/spira-archive"
    ]
    assert spool == ["archive-spool", "archive-spool"]  # one emptyDir, both containers


def test_the_model_pod_replaces_image_token_volume_and_port_and_joins_the_host_network(docs, model):
    pod, _ = model
    spec = pod["spec"]
    main = spec["containers"][0]
    assert main["image"] == MODEL_REF
    assert main["args"] == ["bentoml", "serve", "/opt/bento", "--port", "41234", "--host", "127.0.0.1"]
    assert "command" not in main
    token = next(v for v in spec["volumes"] if v["name"] == "vault-token")
    assert token == {"name": "vault-token", "hostPath": {"path": "/tmp/tok", "type": "Directory"}}
    assert spec["hostNetwork"] is True
    # The rendered documents are not modified.
    assert "nodeSelector" in rendered_template(docs)["spec"]
    assert "projected" in next(
        v for v in rendered_template(docs)["spec"]["volumes"] if v["name"] == "vault-token"
    )
    yaml.safe_load(yaml.safe_dump(pod))  # serialisable for kube play


def test_the_model_pod_wants_a_digest_reference(docs):
    with pytest.raises(KubePlayError, match="by digest"):
        model_pod(
            docs, name="x", image="spira/model:latest", image_cmd=CMD, port=1, token_dir="/t", vault_port=1
        )


def test_a_projected_token_that_is_missing_is_an_error(docs):
    broken = copy.deepcopy(docs)
    spec = find(broken, "Rollout", "spira-model")["spec"]["template"]["spec"]
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] != "vault-token"]
    with pytest.raises(KubePlayError, match="serviceAccountToken"):
        model_pod(broken, name="x", image=MODEL_REF, image_cmd=CMD, port=1, token_dir="/t", vault_port=1)


def test_the_gate_pod_substitutes_the_args_and_keeps_the_job_pod_template(docs):
    pod, dropped, job = gate_pod(
        docs,
        name="spira-kp-gate",
        image=LOADTEST_REF,
        args={"preview-url": "http://127.0.0.1:41234", "model-version": "7"},
    )
    assert dropped == []
    template = next(
        m for m in find(docs, "AnalysisTemplate", "spira-gate")["spec"]["metrics"] if m["name"] == "load-test"
    )
    rendered = template["provider"]["job"]["spec"]["template"]
    spec, rspec = pod["spec"], rendered["spec"]
    main, rmain = spec["containers"][0], rspec["containers"][0]
    assert main["command"] == rmain["command"] == ["spira", "gate"]
    assert main["args"] == [
        "--url",
        "http://127.0.0.1:41234",
        "--thresholds",
        "local",
        "--expect-model-version",
        "7",
        "--out",
        "/tmp/gate",
    ]
    assert "{{" in " ".join(rmain["args"])  # the rendered template still has the placeholders
    assert main["image"] == LOADTEST_REF
    for key in ("securityContext", "resources", "volumeMounts", "imagePullPolicy"):
        assert main[key] == rmain[key]
    for key in (
        "securityContext",
        "volumes",
        "restartPolicy",
        "serviceAccountName",
        "automountServiceAccountToken",
    ):
        assert spec[key] == rspec[key]
    assert spec["restartPolicy"] == "Never" and spec["hostNetwork"] is True
    assert pod["metadata"]["labels"] == rendered["metadata"]["labels"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] == 600


def test_an_arg_without_a_value_is_an_error(docs):
    with pytest.raises(KubePlayError, match="preview-url"):
        gate_pod(docs, name="g", image=LOADTEST_REF, args={"model-version": "1"})
    assert substitute({"a": ["x{{args.b}}y", 3]}, {"b": "Z"}) == {"a": ["xZy", 3]}


def test_with_port_keeps_scheme_host_and_path():
    assert with_port("https://vault.example:8200/v1", 9) == "https://vault.example:9/v1"
    with pytest.raises(KubePlayError):
        with_port("no-host", 9)


def test_a_token_volume_without_vault_ca_beside_the_token_is_an_error(docs):
    broken = copy.deepcopy(docs)
    spec = find(broken, "Rollout", "spira-model")["spec"]["template"]["spec"]
    token = next(v for v in spec["volumes"] if v["name"] == "vault-token")
    token["projected"]["sources"] = [s for s in token["projected"]["sources"] if "configMap" not in s]
    with pytest.raises(KubePlayError, match=r"projects no ca\.crt"):
        model_pod(broken, name="x", image=MODEL_REF, image_cmd=CMD, port=1, token_dir="/t", vault_port=1)
