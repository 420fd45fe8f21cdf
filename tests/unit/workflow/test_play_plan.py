"""`spira workflow play`'s plan: the rendered WorkflowTemplate's DAG, in order, as `podman run` arguments.

Pure: the template is the real render (`render_workflow_objects("local", digest)`); the runner is a fake
that subclasses the play's StepRunner port and answers with the outcome files a stage writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from spira.workflow import render_workflow_objects
from spira.workflow.play import (
    PlayError,
    PlayInputs,
    StepRunner,
    container_args,
    data_inputs,
    find_template,
    plan_steps,
    play_steps,
    step_rows,
)
from training.pipeline import STAGE_NAMES

IMAGE = "127.0.0.1:5000/spira/training@sha256:" + "ab" * 32
VAULT = "https://127.0.0.1:18200"


@pytest.fixture(scope="module")
def template() -> dict:
    return find_template(render_workflow_objects("local", IMAGE))


def inputs(tmp_path: Path, **over) -> PlayInputs:
    base = dict(
        image=IMAGE,
        data_dir=tmp_path / "data",
        dataset_csv=tmp_path / "data" / "dataset.csv",
        noise_csv=tmp_path / "data" / "noise.csv",
        token_dir=tmp_path / "vault",
        vault_addr=VAULT,
        preset="fast",
        epochs=2,
    )
    return PlayInputs(**{**base, **over})


def step(template: dict, name: str):
    return next(s for s in plan_steps(template) if s.name == name)


def plan(template: dict, name: str, tmp_path: Path, **over):
    return container_args(
        step(template, name),
        template["spec"],
        inputs(tmp_path, **over),
        name="c",
        run_id="r",
        scratch_root=tmp_path,
    )


def test_the_steps_are_the_stages_in_dag_order_then_the_cluster_only_candidate(template):
    steps = plan_steps(template)
    assert [s.name for s in steps] == [*STAGE_NAMES, "candidate"]
    assert [s.name for s in steps if s.skip_reason is None] == list(STAGE_NAMES)
    for i, s in enumerate(steps[1:], start=1):
        assert set(s.depends) <= {p.name for p in steps[:i]}


def test_a_step_runs_the_digest_with_only_the_vault_contract_as_the_non_root_manifest_says(
    template, tmp_path
):
    args = plan(template, "features", tmp_path).args
    env = [args[i + 1] for i, a in enumerate(args) if a == "--env"]
    assert env == [
        f"VAULT_ADDR={VAULT}",
        "VAULT_ROLE=spira-local-training",
        "VAULT_SECRET_PATH=secret/spira/local/training",
    ]
    assert args[args.index("--user") + 1] == "10001:10001"
    assert "--read-only" in args and args[args.index("--cap-drop") : args.index("--cap-drop") + 2] == [
        "--cap-drop",
        "ALL",
    ]
    assert args[args.index("--security-opt") + 1] == "no-new-privileges"
    assert args[args.index("--network") + 1] == "host"
    mounts = [args[i + 1] for i, a in enumerate(args) if a == "-v"]
    assert f"{tmp_path / 'vault'}:/var/run/secrets/vault:ro" in mounts
    assert f"{tmp_path / 'data'}:/data:ro" in mounts
    assert f"{tmp_path / 'data' / 'noise.csv'}:/data/noise.csv:ro" in mounts
    assert any(m.endswith(":/tmp:rw") for m in mounts), "the emptyDir is a fresh host folder"
    # the image by digest, then the template's args: the stage's own CLI command
    after = args[args.index(IMAGE) + 1 :]
    assert json.loads(args[args.index("--entrypoint") + 1]) == ["spira"]
    assert after[:2] == ["pipeline", "features"] and after[after.index("--preset") + 1] == "fast"
    assert after[-2:] == ["--epochs", "2"]


def test_the_train_step_drops_only_the_gpu_scheduling_resources_and_retries(template, tmp_path):
    dropped = plan(template, "train", tmp_path).dropped
    assert "train.nodeSelector" in dropped and "train.tolerations" in dropped
    assert "train.resources.limits.nvidia.com/gpu" in dropped and "train.retryStrategy" in dropped
    assert not [d for d in plan(template, "features", tmp_path).dropped if "nodeSelector" in d]


def test_an_image_not_by_digest_or_not_the_rendered_one_is_refused(template, tmp_path):
    with pytest.raises(PlayError, match="by digest"):
        plan(template, "features", tmp_path, image="127.0.0.1:5000/spira/training:latest")


class ScriptedRunner(StepRunner):
    """Answers each step as a stage would: its outcome file in the /tmp folder, and an exit code."""

    def __init__(self, codes: dict[str, int], skipped: set[str]) -> None:
        self.codes, self.skipped, self.ran, self.removed = codes, skipped, [], []

    def run(self, args: Sequence[str], timeout_s: float | None) -> tuple[int, str]:
        stage = args[args.index(IMAGE) + 2]
        self.ran.append(stage)
        tmp = next(a.split(":")[0] for a in args if a.endswith(":/tmp:rw"))
        outcome = {
            "stages": [{"stage": stage, "key": f"k-{stage}", "skipped": stage in self.skipped, "seconds": 1}]
        }
        if stage == "publish":
            outcome["publish"] = {"version": 7}
        Path(tmp, "outcome.json").write_text(json.dumps(outcome))
        code = self.codes.get(stage, 0)
        return code, "error: S3 at http://127.0.0.1:1 failed\n" if code else ""

    def remove(self, name: str) -> None:
        self.removed.append(name)


def test_a_played_run_tells_reused_from_computed_and_takes_the_version_from_publish(template, tmp_path):
    runner = ScriptedRunner({}, skipped={"features"})
    result = play_steps(plan_steps(template), template["spec"], inputs(tmp_path), runner, run_id="r")
    assert runner.ran == list(STAGE_NAMES) and len(runner.removed) == len(STAGE_NAMES)
    assert result.failed is None and result.version == "7"
    rows = {r[0]: r for r in step_rows(result)}
    assert rows["features"][3] == "reused" and rows["train"][3] == "computed"
    assert rows["candidate"][1] == "cluster only"


def test_a_failed_step_stops_the_play_names_itself_and_leaves_the_rest_not_run(template, tmp_path):
    runner = ScriptedRunner({"train": 137}, skipped=set())
    result = play_steps(plan_steps(template), template["spec"], inputs(tmp_path), runner, run_id="r")
    assert runner.ran == ["features", "train"]
    assert result.failed.name == "train" and result.failed.exit_code == 137
    assert "S3 at" in result.failed.detail and result.version is None
    assert [s.status for s in result.steps[2:]] == ["not run", "not run", "not run"]


def test_recordings_outside_the_dataset_folder_are_refused_before_anything_runs(tmp_path):
    from training.data.synth import SynthParams, synthesize

    data = synthesize(SynthParams(n=4, seed=1), tmp_path / "data")
    assert data_inputs(data.dataset_csv, data.noise_csv)[0] == data.dataset_csv.parent
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    moved = elsewhere / "dataset.csv"  # the same recordings named by absolute paths, from another folder
    rows = data.dataset_csv.read_text().splitlines()
    moved.write_text("\n".join([rows[0], *(str(data.dataset_csv.parent / r) for r in rows[1:])]) + "\n")
    with pytest.raises(PlayError, match="outside"):
        data_inputs(moved, data.noise_csv)
