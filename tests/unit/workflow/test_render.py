"""The training WorkflowTemplate, CronWorkflow and triggers as `spira workflow render` prints them (the
kustomize build of each environment's tree, what Argo CD applies): valid against the upstream schemas, the
same objects the generator makes from the CLI's stage list (a stage added to the list is a step), the GPU
pool only for the GPU stages, only the VAULT_* variables, the image by digest, and the stage commands as
memoization (the scheduled run checks the fingerprint first)."""

from __future__ import annotations

import copy
import dataclasses
import itertools

import pytest
import yaml
from typer.testing import CliRunner

from infra import contracts
from infra.workflows import training_workflow
from spira.manifests import training as generated_files
from spira.manifests.render import ARGOCD_DIR
from spira.manifests.schemas import CRD_DIR
from spira.workflow import render as R
from spira.workflow.cli import app
from spira.workflow.validate import WORKFLOW_CRDS, schema_errors, workflow_schema
from training.pipeline import STAGE_NAMES, STAGES

IMAGE = "registry.example/spira-training@sha256:" + "ab" * 32
CLUSTERS = ("staging", "production")


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {env: R.render_workflow_objects(env, IMAGE) for env in CLUSTERS}


def _template(objects: list[dict]) -> dict:
    (template,) = [o for o in objects if o["kind"] == "WorkflowTemplate"]
    return template


def _steps(objects: list[dict]) -> dict[str, dict]:
    return {t["name"]: t for t in _template(objects)["spec"]["templates"] if "container" in t}


@pytest.mark.parametrize("env", CLUSTERS)
def test_the_rendered_objects_validate_against_the_upstream_schemas(rendered, env):
    kinds = [o["kind"] for o in rendered[env]]
    assert kinds == ["WorkflowTemplate", "CronWorkflow", "EventBus", "EventSource", "Sensor"]
    assert schema_errors(rendered[env]) == []


def test_an_unknown_field_anywhere_is_a_schema_error(rendered):
    objects = copy.deepcopy(rendered["staging"])
    _steps(objects)["train"]["retryStrategy"]["backof"] = {"duration": "1s"}
    objects[1]["spec"]["schedule"] = "* * * * *"
    objects[4]["spec"]["triggers"][0]["template"]["argoWorkflows"] = {}
    errors = schema_errors(objects)
    assert any("WorkflowTemplate/spira-training" in e and "backof" in e for e in errors), errors
    assert any("CronWorkflow/spira-training" in e and "'schedule'" in e for e in errors), errors
    assert any("Sensor/spira-training" in e and "argoWorkflows" in e for e in errors), errors


def test_every_stage_of_the_cli_is_a_step_in_the_dag_in_order(rendered):
    template = _template(rendered["staging"])
    steps = _steps(rendered["staging"])
    for stage in STAGES:
        assert steps[stage.name]["container"]["command"] + steps[stage.name]["container"]["args"][:3] == [
            "spira",
            "pipeline",
            stage.name,
            "--data",
        ]
    (dag,) = [t for t in template["spec"]["templates"] if t["name"] == R.PIPELINE]
    tasks = {t["name"]: t for t in dag["dag"]["tasks"]}
    assert [n for n in tasks if n in STAGE_NAMES] == list(STAGE_NAMES)
    for before, after in itertools.pairwise(STAGE_NAMES):
        assert before in tasks[after]["dependencies"]
    for stage in STAGES:
        assert set(stage.needs) <= set(tasks[stage.name].get("dependencies", []))
    assert tasks[R.CANDIDATE]["dependencies"] == [STAGE_NAMES[-1]]


def test_a_stage_added_to_the_stage_list_becomes_a_step_and_leaves_the_committed_base_stale(monkeypatch):
    extra = dataclasses.replace(STAGES[-1], name="report", needs=("publish",))
    monkeypatch.setattr(R, "stage_list", lambda: (*STAGES, extra))
    objects = R.generated_objects("staging", IMAGE)
    assert "report" in _steps(objects)
    (dag,) = [t for t in _template(objects)["spec"]["templates"] if t["name"] == R.PIPELINE]
    assert {"name": "report", "template": "report", "dependencies": ["publish"]} in dag["dag"]["tasks"]
    assert schema_errors(objects) == []
    # `spira manifests check` then fails until `spira manifests golden` writes the step into argocd/base
    assert ARGOCD_DIR / "base" / "training-workflowtemplate.yaml" in generated_files.stale()


def _as_kustomize_builds(objects: list[dict], image: str) -> list[dict]:
    """The generated objects as the base's kustomization transforms them: its labels on every object and
    on the steps' pods, its namespace, the pinned image in every step."""
    base = yaml.safe_load((ARGOCD_DIR / "base" / "kustomization.yaml").read_text())
    (labels,) = [entry["pairs"] for entry in base["labels"]]
    out = R.set_image(objects, image)
    for doc in out:
        doc["metadata"]["labels"] = {**doc["metadata"]["labels"], **labels}
        doc["metadata"]["namespace"] = base["namespace"]
        if doc["kind"] == "WorkflowTemplate":
            pod = doc["spec"]["podMetadata"]
            pod["labels"] = {**pod["labels"], **labels}
    return out


@pytest.mark.parametrize("env", ["local", *CLUSTERS])
def test_what_argo_cd_applies_is_exactly_what_the_generator_makes_for_the_environment(env):
    """One source of truth: the committed base and overlay patches, built by kustomize, are the generator's
    objects for that environment (a hand edit or a stale file fails here and in `spira manifests check`)."""
    pinned = R.pinned_image()
    assert R.render_workflow_objects(env) == _as_kustomize_builds(R.generated_objects(env), pinned)


def test_only_the_templates_arguments_differ_between_environments_in_the_steps(rendered):
    """The steps reference the environment's values; each overlay sets four arguments, whatever the number
    of stages (argocd/allowlist.yaml names them)."""
    staging, production = (_template(rendered[env]) for env in CLUSTERS)
    assert staging["spec"]["templates"] == production["spec"]["templates"]
    assert {p["name"]: p["value"] for p in production["spec"]["arguments"]["parameters"]} == {
        "env": "production",
        "preset": training_workflow().preset("production"),
        "vault-role": "spira-production-training",
        "vault-secret-path": "secret/spira/production/training",
    }


def test_only_the_gpu_stages_run_on_the_gpu_pool_with_its_toleration_and_resource(rendered):
    pool = contracts.gpu_pool()
    assert training_workflow().gpu_stages == ("train",)
    for name, step in _steps(rendered["production"]).items():
        resources = step["container"]["resources"]
        if name == "train":
            assert step["nodeSelector"] == pool.node_selector and step["tolerations"] == [pool.toleration]
            assert resources["limits"][pool.resource] == resources["requests"][pool.resource] == "1"
        else:
            assert "tolerations" not in step and "nodeSelector" not in step, name
            assert pool.resource not in resources["requests"], name


@pytest.mark.parametrize("env", CLUSTERS)
def test_every_step_gets_only_the_vault_variables_of_the_training_workload(rendered, env):
    resolved = [R.resolve_parameters(_template(rendered[env]))]  # as Argo runs the step
    for name, step in _steps(resolved).items():
        container = step["container"]
        env_vars = {e["name"]: e["value"] for e in container["env"]}
        assert env_vars == {
            "VAULT_ADDR": "https://vault.vault.svc.cluster.local:8200",
            "VAULT_ROLE": f"spira-{env}-training",
            "VAULT_SECRET_PATH": f"secret/spira/{env}/training",
        }, name
        assert "envFrom" not in container, name
    assert _template(rendered[env])["spec"]["serviceAccountName"] == "spira-training"


def test_every_step_has_the_image_by_digest_requests_a_deadline_and_retries_with_backoff(rendered):
    for name, step in _steps(rendered["staging"]).items():
        settings = training_workflow().step(name if name in STAGE_NAMES else "-")
        assert step["container"]["image"] == IMAGE, name
        assert step["container"]["resources"]["requests"]["cpu"] == settings.cpu, name
        assert step["container"]["resources"]["requests"]["memory"] == settings.memory, name
        assert step["activeDeadlineSeconds"] == settings.deadline_s > 0, name
        retry = step["retryStrategy"]
        assert retry["limit"] == settings.retries and retry["backoff"]["factor"] == 2, name
        assert retry["backoff"]["duration"] == f"{settings.backoff_s}s", name


def test_an_image_by_tag_is_refused():
    with pytest.raises(ValueError, match="by digest"):
        R.render_workflow_objects("staging", "registry.example/spira-training:latest")


def test_the_schedule_runs_the_pipeline_only_when_the_fingerprint_check_says_changed(rendered):
    cron = rendered["production"][1]
    assert cron["spec"]["schedules"] == [training_workflow().schedule("production")]
    assert cron["spec"]["workflowSpec"] == {
        "workflowTemplateRef": {"name": "spira-training"},
        "entrypoint": "scheduled",
    }
    templates = {t["name"]: t for t in _template(rendered["production"])["spec"]["templates"]}
    check, run = templates["scheduled"]["steps"]
    assert check[0]["template"] == R.CHECK and run[0]["template"] == R.PIPELINE
    assert run[0]["when"] == "{{steps.check.outputs.parameters.result}} == changed"
    command = templates[R.CHECK]["container"]["command"] + templates[R.CHECK]["container"]["args"]
    assert command[:3] == ["spira", "pipeline", "fingerprint"] and "--check" in command
    assert templates[R.CHECK]["outputs"]["parameters"][0]["valueFrom"]["path"] == command[-1]


def test_the_triggers_submit_the_scheduled_run_on_the_drift_alert_and_on_labelled_data(rendered):
    sensor = rendered["staging"][4]
    deps = {d["name"]: d for d in sensor["spec"]["dependencies"]}
    alert = [
        f["value"] for f in deps["drift"]["filters"]["data"] if f["path"] == "body.commonLabels.alertname"
    ]
    assert alert == [["SpiraInputDrift"]]
    rules = yaml.safe_load((contracts.REPO_ROOT / "infra/monitoring/spira-rules.yaml").read_text())
    assert "SpiraInputDrift" in {r.get("alert") for g in rules["groups"] for r in g["rules"]}
    (trigger,) = sensor["spec"]["triggers"]
    workflow = trigger["template"]["argoWorkflow"]["source"]["resource"]
    assert workflow["spec"] == {"workflowTemplateRef": {"name": "spira-training"}, "entrypoint": "scheduled"}
    assert trigger["template"]["conditions"] == "drift || labelled"


def test_local_renders_the_base_whose_template_play_runs_with_the_local_values():
    objects = R.render_workflow_objects("local", IMAGE)
    assert [o["kind"] for o in objects] == list(R.KINDS) and schema_errors(objects) == []
    train = _steps([R.resolve_parameters(_template(objects))])["train"]["container"]
    assert train["args"][train["args"].index("--preset") + 1] == training_workflow().preset("local")
    assert {"name": "VAULT_ROLE", "value": "spira-local-training"} in train["env"]


def test_the_render_command_prints_valid_multi_document_yaml():
    out = CliRunner().invoke(app, ["render", "staging"])  # the pinned training image
    assert out.exit_code == 0, out.output
    docs = list(yaml.safe_load_all(out.stdout))
    assert [d["kind"] for d in docs][:2] == ["WorkflowTemplate", "CronWorkflow"]


def _open_objects(node, path=""):
    if isinstance(node, dict):
        closed = node.get("additionalProperties") is False or isinstance(
            node.get("additionalProperties"), dict
        )
        if (
            node.get("type") == "object"
            and not closed
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            yield path
        for key, value in node.items():
            yield from _open_objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _open_objects(value, f"{path}/{i}")


@pytest.mark.parametrize("api_kind", sorted(WORKFLOW_CRDS))
def test_every_closed_object_of_the_vendored_workflow_crds_rejects_unknown_fields(api_kind):
    assert list(_open_objects(workflow_schema(*api_kind))) == []
    text = (CRD_DIR / WORKFLOW_CRDS[api_kind]).read_text()
    assert "argoproj/argo-workflows manifests/base/crds/full/" in text and "commit " in text
