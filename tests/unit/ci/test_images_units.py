"""Pure parts of the image tooling: configuration text, recipes, constraints, digest edits, workflow policy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ci.base_image import BaseRecipe, InfraRecipe
from ci.build import bento_model_version
from ci.ephemeral import command_on_port, model_run_args
from ci.podman import PodmanConfig
from ci.set_image import SetImageError, parse_digest, replace_annotation, replace_digest
from ci.wheelhouse import WheelhouseSpec, flavoured_constraints, pyproject_requirements

REPO = Path(__file__).resolve().parents[3]
DIGEST = "sha256:" + "ab" * 32


def test_the_podman_configuration_uses_runc_cgroupfs_no_ulimits_and_the_infra_image(tmp_path: Path):
    conf = PodmanConfig(tmp_path, "localhost/spira-infra:x").write()
    text = conf.containers_conf_path.read_text()
    assert 'runtime = "runc"' in text and 'cgroup_manager = "cgroupfs"' in text
    assert "default_ulimits = []" in text and 'infra_image = "localhost/spira-infra:x"' in text
    env = conf.env({})
    assert env["CONTAINERS_CONF"] == str(conf.containers_conf_path)
    assert str(tmp_path / "storage") in Path(env["CONTAINERS_STORAGE_CONF"]).read_text()


def test_the_base_image_is_named_by_its_recipe():
    assert BaseRecipe().image == BaseRecipe().image
    assert BaseRecipe(packages=("python3",)).image != BaseRecipe().image
    assert InfraRecipe().image != InfraRecipe(base=BaseRecipe(suite="trixie")).image


def test_the_model_wheelhouse_holds_the_project_and_serving_requirements_only():
    names = pyproject_requirements(REPO / "pyproject.toml", ["serving"])
    assert {"torch", "bentoml", "hvac", "soxr", "soundfile"} <= set(names)
    # the pod runs neither the command line nor the tests' reference implementations
    assert not {"mlflow", "locust", "pulumi", "pytest", "librosa", "typer", "onnxruntime"} & set(names)


def test_the_torch_flavour_changes_only_the_torch_pin():
    lock = "numpy==2.4.6\ntorch==2.13.0+cpu\ntyper==0.29.2\n"
    assert flavoured_constraints(lock, "cuda") == "numpy==2.4.6\ntorch==2.13.0+cu128\ntyper==0.29.2\n"
    assert flavoured_constraints(lock, "cpu") == lock
    with pytest.raises(ValueError):
        flavoured_constraints(lock, "rocm")


def test_wheelhouses_differ_by_flavour_but_not_for_images_without_torch():
    lock = (REPO / "requirements.lock").read_text()
    cpu, cuda = (WheelhouseSpec("model", ("torch",), lock, f) for f in ("cpu", "cuda"))
    assert cpu.key() != cuda.key()
    assert WheelhouseSpec("loadtest", ("locust",), lock, "cuda").constraints() == lock


def test_set_image_replaces_only_the_digest_of_the_named_image():
    text = (REPO / "argocd/base/kustomization.yaml").read_text()
    new = replace_digest(text, "spira-model", DIGEST)
    changed = [(a, b) for a, b in zip(text.splitlines(), new.splitlines(), strict=True) if a != b]
    assert len(changed) == 1 and changed[0][1].strip() == f"digest: {DIGEST}"
    with pytest.raises(SetImageError):
        replace_digest(text, "spira-nothing", DIGEST)


def test_a_tag_or_a_short_digest_is_not_accepted_as_a_digest():
    assert parse_digest(f"127.0.0.1:5000/spira/model@{DIGEST}") == DIGEST
    for bad in ("127.0.0.1:5000/spira/model:latest", "sha256:abc", "md5:" + "a" * 32):
        with pytest.raises(SetImageError):
            parse_digest(bad)


def test_the_model_version_annotation_is_quoted_and_unique():
    text = (REPO / "argocd/base/model-rollout.yaml").read_text()
    out = replace_annotation(text, "spira.dev/model-version", "12")
    assert yaml.safe_load(out)["metadata"]["annotations"]["spira.dev/model-version"] == "12"


def test_the_model_version_comes_from_the_bento_models_metadata(tmp_path: Path):
    (tmp_path / "models/spira-model/mlflow-v3").mkdir(parents=True)
    (tmp_path / "bento.yaml").write_text("models:\n- tag: spira-model:mlflow-v3\n")
    (tmp_path / "models/spira-model/mlflow-v3/model.yaml").write_text("metadata:\n  model_version: '3'\n")
    assert bento_model_version(tmp_path) == "3"


def test_the_model_version_is_found_under_the_service_as_bentoml_1_4_writes_it(tmp_path: Path):
    (tmp_path / "models/spira-respiratory/mlflow-v7").mkdir(parents=True)
    (tmp_path / "bento.yaml").write_text(
        "models: []\nservices:\n- name: spira\n  models:\n  - tag: spira-respiratory:mlflow-v7\n"
    )
    (tmp_path / "models/spira-respiratory/mlflow-v7/model.yaml").write_text(
        "metadata:\n  model_version: '7'\n"
    )
    assert bento_model_version(tmp_path) == "7"


def test_the_ephemeral_container_moves_only_the_port_and_runs_like_the_rollout(tmp_path: Path):
    cmd = ["bentoml", "serve", "/opt/bento", "--port", "3000", "--host", "0.0.0.0"]
    assert command_on_port(cmd, 4321) == [
        "bentoml",
        "serve",
        "/opt/bento",
        "--port",
        "4321",
        "--host",
        "127.0.0.1",
    ]
    env = {"VAULT_ADDR": "a", "VAULT_ROLE": "b", "VAULT_SECRET_PATH": "c", "VAULT_JWT_SIGNER_KEY": "secret"}
    args = model_run_args("n", ["x"], "img@" + DIGEST, env, tmp_path)
    assert "--read-only" in args and "10001:10001" in args and "ALL" in args
    assert not any("VAULT_JWT" in a for a in args), "only the three VAULT_* variables reach the container"


def workflow(name: str) -> dict:
    return yaml.safe_load((REPO / ".github/workflows" / name).read_text())


@pytest.mark.parametrize("name", ["build-and-test.yml", "promote.yml"])
def test_every_action_is_pinned_to_a_full_commit_sha(name: str):
    text = (REPO / ".github/workflows" / name).read_text()
    uses = re.findall(r"uses:\s*(\S+)", text)
    assert uses and all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in uses), uses


@pytest.mark.parametrize("name", ["build-and-test.yml", "promote.yml"])
def test_workflows_default_to_read_only_and_have_a_concurrency_group(name: str):
    wf = workflow(name)
    assert wf["permissions"] == {"contents": "read"} and wf["concurrency"]["group"]


def test_only_the_staging_record_job_may_write_and_only_on_staging():
    jobs = workflow("build-and-test.yml")["jobs"]
    writers = {n for n, j in jobs.items() if (j.get("permissions") or {}).get("contents") == "write"}
    assert writers == {"record-on-staging"}
    assert "refs/heads/staging" in jobs["record-on-staging"]["if"]


def test_promotion_builds_nothing():
    text = (REPO / ".github/workflows/promote.yml").read_text()
    assert "verify-promotion" in text
    assert not re.search(r"podman|image build|ci\.workflow", text)
