"""The clinical gate in the manifests: the Rollout's second prePromotionAnalysis metric (docs/gate.md).

Its AnalysisTemplate runs `spira gate clinical` from the gate image (by the same digest as the load gate)
with the preview colour as the candidate and the active one as the baseline; each environment judges with
its own margins and reads its own holdout with its own key; strict CRD schemas, the semantic and the
cross-layer checks cover it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.environments import declared
from infra.vault import clients, layout
from spira.manifests import contracts, integrity, render, schemas, semantic
from spira.manifests.generate import HOLDOUT_PREFIX
from spira_core.clinical.thresholds import THRESHOLDS_DIR
from tests.unit.manifests.helpers import docs, model, one

NAME = "spira-clinical-gate"
ENVS = list(render.ENVIRONMENTS)


def job(rendered: list[dict]) -> dict:
    template = one(rendered, "AnalysisTemplate", NAME)
    (metric,) = template["spec"]["metrics"]
    return metric["provider"]["job"]


def container(rendered: list[dict]) -> dict:
    (c,) = job(rendered)["spec"]["template"]["spec"]["containers"]
    return c


def args_of(rendered: list[dict]) -> dict[str, str]:
    return {a["name"]: a.get("value") for a in one(rendered, "AnalysisTemplate", NAME)["spec"]["args"]}


@pytest.mark.parametrize("env", ENVS)
def test_the_rollout_gates_promotion_on_the_load_test_and_the_clinical_gate_with_both_colours(env):
    rendered = docs(env)
    pre = one(rendered, "Rollout", "spira-model")["spec"]["strategy"]["blueGreen"]["prePromotionAnalysis"]
    assert [t["templateName"] for t in pre["templates"]] == ["spira-gate", NAME]
    given = {a["name"]: a.get("value") for a in pre["args"]}
    bg = one(rendered, "Rollout", "spira-model")["spec"]["strategy"]["blueGreen"]
    port = one(rendered, "Service", bg["activeService"])["spec"]["ports"][0]["port"]
    scheme = given["preview-url"].split("://")[0]  # both colours are the same pods: the same scheme
    for arg, service in (("preview-url", bg["previewService"]), ("active-url", bg["activeService"])):
        assert given[arg] == f"{scheme}://{service}.{declared().workload_namespace}.svc.cluster.local:{port}"


@pytest.mark.parametrize("env", ENVS)
def test_the_clinical_job_runs_spira_gate_clinical_candidate_against_baseline_from_the_gate_image(env):
    rendered = docs(env)
    c = container(rendered)
    assert c["command"] == ["spira", "gate", "clinical"]
    line = " ".join(c["args"])
    assert re.fullmatch(
        r"--url \{\{args\.preview-url\}\} --baseline-url \{\{args\.active-url\}\} --holdout "
        r"\{\{args\.holdout\}\} --thresholds \{\{args\.clinical-thresholds\}\} --out /tmp/\S+",
        line,
    ), line
    # the gate image, by the same digest as the load gate's Job
    load_gate = one(rendered, "AnalysisTemplate", "spira-gate")["spec"]["metrics"][0]["provider"]["job"]
    assert c["image"] == load_gate["spec"]["template"]["spec"]["containers"][0]["image"]
    assert "@sha256:" in c["image"]
    spec = job(rendered)["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] > 0
    assert spec["template"]["spec"]["serviceAccountName"] == clients.CLIENTS["gate"].service_account
    assert spec["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "spira-gate"


@pytest.mark.parametrize("env", ENVS)
def test_each_environment_judges_with_its_own_margins_and_reads_its_own_holdout_with_its_own_key(env):
    rendered = docs(env)
    args = args_of(rendered)
    assert args["clinical-thresholds"] == env and (THRESHOLDS_DIR / f"{env}.yaml").is_file()
    features = declared().buckets(env)["features_bucket"]
    assert args["holdout"] == f"s3://{features}/{HOLDOUT_PREFIX}"
    # the gate's declared grant covers exactly reading the holdout folder
    (grant,) = declared().object_store_grants(env, "gate")
    assert grant.bucket == features and grant.prefix == HOLDOUT_PREFIX and grant.actions == ("GetObject",)
    values = {e["name"]: e["value"] for e in container(rendered)["env"]}
    assert values == {
        # the Vault every pod of the environment logs in to (the model's)
        "VAULT_ADDR": {e["name"]: e["value"] for e in model(rendered)["env"]}["VAULT_ADDR"],
        "VAULT_ROLE": layout.role_name(env, "gate"),
        "VAULT_SECRET_PATH": layout.secret_ref(env, "gate"),
        "VAULT_PREDICT_ROLE": clients.role_name(env, "gate"),
        # the https preview and active Services are verified with the platform CA beside the token only
        "SSL_CERT_FILE": "/var/run/secrets/vault/ca.crt",
    }


def test_a_typo_in_the_clinical_gate_job_is_rejected_by_the_strict_schemas():
    rendered = docs()
    assert (
        list(schemas.validate(one(rendered, "AnalysisTemplate", NAME), contracts.kubernetes_version())) == []
    )
    job(rendered)["spec"]["template"]["spec"]["containers"][0]["agrs"] = ["--url"]
    errors = [
        e.message
        for e in schemas.validate(one(rendered, "AnalysisTemplate", NAME), contracts.kubernetes_version())
    ]
    assert len(errors) == 1 and "agrs" in errors[0]


def test_an_arg_the_rollout_passes_that_no_listed_template_declares_is_found_and_one_that_any_declares_is_not():
    rendered = docs()
    assert [f for f in semantic.analysis_references(rendered) if f.check == "analysis-args"] == []
    pre = one(rendered, "Rollout", "spira-model")["spec"]["strategy"]["blueGreen"]["prePromotionAnalysis"]
    pre["args"].append({"name": "holdot", "value": "s3://x/holdout/"})
    (found,) = [str(f) for f in semantic.analysis_references(rendered)]
    assert "passes args ['holdot'] that no template declares" in found


def test_a_clinical_gate_whose_client_role_grants_no_identity_token_is_found():
    rendered = render.render_docs("staging")
    inputs = integrity.live_inputs("staging", rendered, render.REPO_ROOT)
    assert [str(f) for f in integrity.vault_logins(inputs)] == []
    for r in inputs.resources:
        if r["inputs"].get("roleName") == "spira-staging-predict-gate":
            r["inputs"]["tokenPolicies"] = ["spira-staging-predict-intake"]
    found = [str(f) for f in integrity.vault_logins(inputs)]
    assert any(f"{NAME}" in f and "VAULT_PREDICT_ROLE" in f and "grant no identity token" in f for f in found)


def test_the_gate_image_carries_the_clinical_gate_and_routes_spira_gate_clinical_to_it():
    from ci.build import IMAGES

    root = Path(render.REPO_ROOT)
    context = IMAGES["loadtest"].context
    for module in ("spira/clinical/gate.py", "spira/clinical/report.py", "spira/clinical/holdout_access.py"):
        assert context.get(module) == module
    assert context["spira_core/clinical"] == "spira_core/clinical"
    containerfile = (root / IMAGES["loadtest"].containerfile).read_text()
    assert '[ "$2" = clinical ]' in containerfile and "-m spira.clinical.gate" in containerfile
    wanted = (root / "loadtests/requirements.in").read_text().split()
    assert {"numpy", "boto3"} <= set(wanted) and "torch" not in wanted
