"""The Rollouts notification that starts the revert: the chart's configmap as rendered for a cluster is a
valid ConfigMap, its trigger on-rollout-aborted sends a webhook to GitHub's dispatches API whose body is
JSON with the event type and payload the revert workflow reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from infra.components.argo import rollouts_notifications

REPO = Path(__file__).resolve().parents[3]
WORKFLOW = REPO / ".github/workflows/revert.yml"
REPO_URL = "https://github.com/spira-platform/spira-platform.git"


def configmap(values: dict) -> dict:
    """What the argo-rollouts chart renders from these values (notifiers, templates and triggers as data
    keys, subscriptions as YAML text)."""
    data = {**values["notifiers"], **values["templates"], **values["triggers"]}
    data["subscriptions"] = yaml.safe_dump(values["subscriptions"])
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "argo-rollouts-notification-configmap", "namespace": "argo-rollouts"},
        "data": data,
    }


def sample(go_template: str) -> str:
    """The body as the controller would send it for a rollout, Go template actions filled with text."""
    return re.sub(r"\{\{[^}]*\}\}", "spira-model", go_template)


@pytest.mark.parametrize("env", ["staging", "production"])
def test_the_rendered_configmap_is_a_valid_configmap_that_dispatches_the_revert_for_its_environment(env):
    values = rollouts_notifications(env, REPO_URL)
    kubernetes_validate.validate(configmap(values), "1.30", strict=True)
    trigger = yaml.safe_load(values["triggers"]["trigger.on-rollout-aborted"])
    (template_name,) = trigger[0]["send"]
    template = yaml.safe_load(values["templates"][f"template.{template_name}"])
    ((service, hook),) = template["webhook"].items()
    assert f"service.webhook.{service}" in values["notifiers"]
    notifier = yaml.safe_load(values["notifiers"][f"service.webhook.{service}"])
    assert notifier["url"] == "https://api.github.com"
    assert hook["method"] == "POST" and hook["path"] == "/repos/spira-platform/spira-platform/dispatches"
    body = json.loads(sample(hook["body"]))
    assert body["client_payload"]["environment"] == env
    assert {"rollout", "namespace", "message"} <= set(body["client_payload"])
    subscribed = {t for s in values["subscriptions"] for t in s["triggers"] if service in s["recipients"]}
    assert "on-rollout-aborted" in subscribed


def test_the_dispatch_event_is_the_one_the_revert_workflow_listens_for_and_it_runs_promote_revert():
    values = rollouts_notifications("staging", REPO_URL)
    template = yaml.safe_load(values["templates"]["template.rollout-aborted-revert"])
    event = json.loads(sample(template["webhook"]["github"]["body"]))["event_type"]
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow[True]["repository_dispatch"]["types"] == [event]  # PyYAML reads `on:` as True
    script = workflow["jobs"]["revert"]["steps"][-1]["run"]
    assert 'spira promote revert --env "$ENVIRONMENT"' in script and "--push" in script


def test_a_repository_that_is_not_on_github_is_refused():
    with pytest.raises(ValueError, match="not a GitHub repository URL"):
        rollouts_notifications("staging", "https://example.com/spira.git")
