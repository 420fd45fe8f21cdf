"""Issue 20's labelled-data trigger, as the Pulumi program and the manifests wire it: the SeaweedFS filer's
webhook notifier (notification.toml from the plan) posts to the EventSource's `/labelled`, and the Sensor keeps
exactly the events of a data list created or rewritten in its environment's features bucket.

The Sensor's data filters are read the way Argo Events reads them: a dotted path into the event (`body.` is
the posted JSON), a string value matched against any of the filter's regular expressions, all filters
required. The posted bodies below are the shape a real filer posts (tests/integration/workflow/
test_labelled_trigger.py records them from `weed`)."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from infra.offline import Plan
from infra.workflows import DATA_LISTS, labelled_folder, seaweedfs_notification, webhook_url
from tests.fakes.infra import plan
from tests.fixtures.sensor_filters import sensor_submits

CLUSTERS = ("staging", "production")


def _filer_notification(p: Plan) -> dict[str, Any]:
    (release,) = [
        r for r in p.of_type("kubernetes:helm.sh/v3:Release") if r.inputs.get("chart") == "seaweedfs"
    ]
    return tomllib.loads(release.inputs["values"]["filer"]["notificationConfig"])


def posted(event_type: str, key: str) -> dict[str, Any]:
    return {"event_type": event_type, "key": key, "message": {"new_entry": {"name": key.rsplit("/", 1)[-1]}}}


@pytest.mark.parametrize("env", CLUSTERS)
def test_the_filer_posts_creates_and_updates_under_the_labelled_folder_to_the_eventsource(env: str) -> None:
    webhook = _filer_notification(plan(env, objectStore="seaweedfs"))["notification"]["webhook"]
    assert webhook["enabled"] is True
    assert webhook["endpoint"] == webhook_url("labelled")
    assert webhook["path_prefixes"] == [labelled_folder(env)]
    assert labelled_folder(env).startswith(f"/buckets/spira-{env}-features/")
    assert set(webhook["event_types"]) == {"create", "update"}
    assert webhook["max_retries"] > 0, "an EventSource restarting must not lose the event"


@pytest.mark.parametrize("env", CLUSTERS)
@pytest.mark.parametrize("name", DATA_LISTS)
def test_a_data_list_written_in_the_environments_bucket_submits_one_run(env: str, name: str) -> None:
    assert sensor_submits(env, posted("create", labelled_folder(env) + name))
    assert sensor_submits(env, posted("update", labelled_folder(env) + name))


@pytest.mark.parametrize(
    "event_type, where",
    [
        ("create", "{folder}recordings/0001.wav"),  # a recording: its list follows, one run for the lot
        ("create", "{folder}"),  # the folder itself
        ("delete", "{folder}dataset.csv"),  # a delete retrains nothing
        ("create", "{folder}old/dataset.csv"),  # a list elsewhere under the prefix
        ("create", "{folder}dataset.csv.bak"),
        ("create", "/buckets/spira-production-features/labelled/dataset.csv"),  # another environment's
        ("create", "/buckets/spira-staging-archive/labelled/dataset.csv"),  # another bucket
    ],
)
def test_the_sensor_ignores_everything_but_this_environments_data_lists(event_type: str, where: str) -> None:
    assert not sensor_submits("staging", posted(event_type, where.format(folder=labelled_folder("staging"))))


def test_minio_gets_no_filer_notification_and_the_local_base_names_the_local_bucket() -> None:
    (release,) = [
        r
        for r in plan("staging", objectStore="minio").of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs.get("chart") == "minio"
    ]
    assert "notificationConfig" not in str(release.inputs["values"])
    assert sensor_submits("local", posted("create", "/buckets/spira-local-features/labelled/dataset.csv"))
    assert "/buckets/spira-local-features/labelled/" in seaweedfs_notification("local")
