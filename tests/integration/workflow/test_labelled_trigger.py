"""The labelled-data trigger on a real SeaweedFS: `weed server` runs with the filer's notification.toml exactly
as the staging plan renders it, but for its endpoint, which points at a local receiver standing in for the
EventSource. Labelled data is uploaded the way operators do (recordings first, then the lists) beside other
writes to the bucket; what the filer posts, and what the Sensor's filters keep of it, is checked."""

from __future__ import annotations

import json
import threading
import time
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from infra.workflows import DATA_LISTS, labelled_folder
from tests.fakes.infra import plan
from tests.fixtures.sensor_filters import sensor_submits
from tests.fixtures.weed import weed_server

pytestmark = pytest.mark.integration
ENV = "staging"


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, list[dict]]]:
    """The EventSource's stand-in: records each JSON body posted to /labelled, answers 200."""
    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if self.path == "/labelled":
                bodies.append(json.loads(body))
            self.send_response(200 if self.path == "/labelled" else 404)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/labelled", bodies
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory, receiver: tuple[str, list[dict]]) -> Iterator:
    (release,) = [
        r
        for r in plan(ENV, objectStore="seaweedfs").of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs.get("chart") == "seaweedfs"
    ]
    rendered = release.inputs["values"]["filer"]["notificationConfig"]
    webhook = tomllib.loads(rendered)["notification"]["webhook"]
    home = tmp_path_factory.mktemp("weed-notify")
    # weed reads ./notification.toml: the plan's, with only the endpoint swapped for the receiver
    (home / "notification.toml").write_text(rendered.replace(webhook["endpoint"], receiver[0]))
    with weed_server(home) as (url, log):
        assert "notification message queue for webhook" in log.read_text()
        # no identities configured: this throwaway server takes any signature (the plan's are tested elsewhere)
        yield boto3.client(
            "s3", endpoint_url=url, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
        )


def _settle(bodies: list[dict], expected: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while len(bodies) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # anything posted late would show up now


@pytest.fixture(scope="module")
def uploaded(s3, receiver: tuple[str, list[dict]]) -> list[dict]:
    bucket = f"spira-{ENV}-features"
    prefix = labelled_folder(ENV).removeprefix(f"/buckets/{bucket}/")
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=f"spira-{ENV}-archive")
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"{prefix}recordings/{i:04d}.wav", Body=b"RIFF" + bytes(64))
    s3.put_object(Bucket=bucket, Key="features/abc/features.npy", Body=b"not labelled data")
    s3.put_object(Bucket=f"spira-{ENV}-archive", Key=f"{prefix}dataset.csv", Body=b"another bucket")
    for name in DATA_LISTS:
        s3.put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=b"path,label\n")
    s3.delete_object(Bucket=bucket, Key=f"{prefix}recordings/0000.wav")
    _settle(receiver[1], expected=5 + len(DATA_LISTS))
    return list(receiver[1])


def test_the_filer_posts_only_what_lands_under_the_labelled_folder_of_the_features_bucket(uploaded) -> None:
    keys = [b["key"] for b in uploaded]
    assert keys, "the filer posted nothing"
    assert all(k.startswith(labelled_folder(ENV)) for k in keys), keys
    assert {b["event_type"] for b in uploaded} <= {"create", "update"}, "deletes are not new data"
    for i in range(5):
        assert f"{labelled_folder(ENV)}recordings/{i:04d}.wav" in keys


def test_the_sensor_submits_once_per_data_list_and_never_for_a_recording(uploaded) -> None:
    submitted = [b["key"] for b in uploaded if sensor_submits(ENV, b)]
    assert sorted(submitted) == sorted(labelled_folder(ENV) + name for name in DATA_LISTS)
