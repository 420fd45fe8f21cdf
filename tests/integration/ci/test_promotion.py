"""Promotion with real git: a bare origin with `staging` and `main`, digests recorded by trailers."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from ci.promotion import Deployed, commit_record, deploy_tested, git, trailers, verify_promotion
from ci.set_image import KUSTOMIZATION, image_entries, set_image

REPO = Path(__file__).resolve().parents[3]


def fake_digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def run(cwd: Path, *args: str) -> str:
    return git(cwd, *args)


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> Path:
    """A bare origin whose `main` and `staging` start from the repository's committed HEAD."""
    base = tmp_path_factory.mktemp("promotion")
    bare = base / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", "--no-hardlinks", str(REPO), str(bare)], check=True)
    git(bare, "branch", "-f", "staging", "HEAD")
    head = git(bare, "symbolic-ref", "--short", "HEAD").strip()
    if head != "main":
        git(bare, "branch", "-f", "main", "HEAD")
    return bare


def clone(origin: Path, where: Path, branch: str) -> Path:
    subprocess.run(["git", "clone", "-q", "-b", branch, str(origin), str(where)], check=True)
    run(where, "config", "user.email", "ci@spira.test")
    run(where, "config", "user.name", "spira ci")
    return where


def deploy_to_staging(origin: Path, work: Path, digest: str, version: str) -> str:
    """What the staging workflow does after an ephemeral test passed: set-image, commit with trailers, push."""
    ci = clone(origin, work, "staging")
    loadtest, intake = fake_digest(f"loadtest-{version}"), fake_digest(f"intake-{version}")
    training = fake_digest(f"training-{version}")
    changed = set_image(ci, "loadtest", loadtest, golden=False).changed
    changed += set_image(ci, "intake", intake, golden=False).changed
    changed += set_image(ci, "training", training, golden=False).changed
    changed += set_image(ci, "model", digest, model_version=version).changed
    commit = commit_record(
        ci,
        sorted(set(changed)),
        f"images: deploy spira-model {version}",
        trailers(
            {"model": digest, "loadtest": loadtest, "intake": intake, "training": training},
            "local-test-run",
            version,
        ),
    )
    run(ci, "push", "-q", "origin", "staging")
    return commit


def merge_staging_into_main(origin: Path, work: Path) -> Path:
    repo = clone(origin, work, "main")
    run(repo, "merge", "-q", "--no-ff", "-m", "promote staging", "origin/staging")
    return repo


@pytest.fixture(scope="module")
def promoted(origin: Path, tmp_path_factory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("promoted")
    tested = fake_digest("tested-image")
    deploy_to_staging(origin, base / "staging", tested, "7")
    return merge_staging_into_main(origin, base / "main"), tested


def test_set_image_changes_only_the_digest_line_and_the_model_version(origin: Path, tmp_path: Path):
    repo = clone(origin, tmp_path / "w", "staging")
    digest = fake_digest("one-line")
    set_image(repo, "model", f"127.0.0.1:5000/spira/model@{digest}", model_version="42", golden=False)
    diff = run(repo, "diff", "-U0", "--", str(KUSTOMIZATION))
    changed = [ln for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    assert len(changed) == 2 and changed[1].strip() == f"+    digest: {digest}"
    rollout_diff = run(repo, "diff", "-U0", "--", "argocd/base/model-rollout.yaml")
    assert '+    spira.dev/model-version: "42"' in rollout_diff


def test_merging_staging_into_main_passes_and_main_carries_the_tested_digest(promoted):
    repo, tested = promoted
    verdict = verify_promotion(repo, "HEAD", "origin/staging")
    assert verdict.ok, verdict.lines
    kust = image_entries(run(repo, "show", f"HEAD:{KUSTOMIZATION}"))
    assert kust["spira-model"].digest == tested
    # the training image went through the same commit: the WorkflowTemplate's digest is verified with them
    training = kust["spira-training"].digest
    assert training == fake_digest("training-7")
    assert any(line.startswith(f"OK spira-training@{training}") for line in verdict.lines), verdict.lines


def test_the_golden_files_follow_the_digest_on_staging(promoted):
    repo, tested = promoted
    assert tested in (repo / "argocd/golden/production.yaml").read_text()


def test_a_digest_hand_edited_on_main_is_refused_with_the_tested_one_named(promoted):
    repo, tested = promoted
    work = repo
    forged = fake_digest("built-on-a-laptop")
    set_image(work, "model", forged, model_version="7", golden=False)
    run(work, "commit", "-q", "-am", "quick fix on main")
    try:
        verdict = verify_promotion(work, "HEAD", "origin/staging")
        assert not verdict.ok
        message = "\n".join(verdict.lines)
        assert forged in message and tested in message and "never tested" in message
    finally:
        run(work, "reset", "-q", "--hard", "HEAD~1")


def test_the_training_image_pinned_a_second_time_outside_the_kustomization_is_refused(promoted):
    """The WorkflowTemplate takes its image from the kustomization's `spira-training` entry only: a digest
    written straight into another file of main would deploy an image no trailer vouches for."""
    repo, _ = promoted
    training = image_entries(run(repo, "show", f"HEAD:{KUSTOMIZATION}"))["spira-training"]
    assert verify_promotion(repo, "HEAD", "origin/staging").ok
    copy = repo / "infra" / "training-image.yaml"
    copy.write_text(f"image: {training.new_name}@{fake_digest('a-second-pin')}\n")
    run(repo, "add", str(copy))
    run(repo, "commit", "-q", "-m", "pin the training image for the cluster")
    try:
        verdict = verify_promotion(repo, "HEAD", "origin/staging")
        assert not verdict.ok
        (refused,) = [line for line in verdict.lines if line.startswith("REFUSED")]
        assert refused.startswith("REFUSED spira-training: pinned again in infra/training-image.yaml")
    finally:
        run(repo, "reset", "-q", "--hard", "HEAD~1")


def test_a_digest_never_tested_is_refused_even_when_it_came_through_staging(origin: Path, tmp_path: Path):
    staging = clone(origin, tmp_path / "s", "staging")
    untested = fake_digest("pushed-straight-to-staging")
    result = set_image(staging, "model", untested, model_version="7", golden=False)
    run(staging, "commit", "-q", "-m", "no trailers here", "--", *map(str, result.changed))
    main = clone(origin, tmp_path / "m", "main")
    run(main, "pull", "-q", "--no-rebase", "--no-edit", str(staging), "staging")
    verdict = verify_promotion(main, "HEAD", "origin/staging")
    assert not verdict.ok
    assert any(untested in line and "never tested" in line for line in verdict.lines), verdict.lines


def test_a_model_version_that_differs_from_the_tested_one_is_refused(promoted):
    repo, _ = promoted
    text = (repo / "argocd/base/model-rollout.yaml").read_text()
    (repo / "argocd/base/model-rollout.yaml").write_text(
        text.replace('model-version: "7"', 'model-version: "8"')
    )
    run(repo, "commit", "-q", "-am", "bump the version by hand")
    try:
        verdict = verify_promotion(repo, "HEAD", "origin/staging")
        assert not verdict.ok and any("'8'" in line and "'7'" in line for line in verdict.lines)
    finally:
        run(repo, "reset", "-q", "--hard", "HEAD~1")


def test_a_worker_rollout_announcing_another_model_version_is_refused(promoted):
    """The queue workers run the model image's bundle too: their Rollout must announce the tested version."""
    repo, _ = promoted
    worker = repo / "argocd/base/worker-rollout.yaml"
    worker.write_text(worker.read_text().replace('model-version: "7"', 'model-version: "6"'))
    run(repo, "commit", "-q", "-am", "workers on another version")
    try:
        verdict = verify_promotion(repo, "HEAD", "origin/staging")
        refused = [line for line in verdict.lines if line.startswith("REFUSED")]
        assert not verdict.ok and len(refused) == 1, verdict.lines
        assert "worker-rollout.yaml" in refused[0] and "'6'" in refused[0] and "'7'" in refused[0]
    finally:
        run(repo, "reset", "-q", "--hard", "HEAD~1")


def test_a_main_without_any_tested_record_is_refused(origin: Path, tmp_path: Path):
    main = clone(origin, tmp_path / "fresh", "main")
    verdict = verify_promotion(main, "HEAD", "origin/main")
    assert not verdict.ok and "no commit shared" in verdict.lines[0]


def test_recording_the_same_tested_digests_twice_is_a_no_op(origin: Path, tmp_path: Path):
    """A demo or CI rerun with digests staging already deploys: no empty commit, no error."""
    work = clone(origin, tmp_path / "staging", "staging")
    refs = {"loadtest": fake_digest("rerun-loadtest"), "model": fake_digest("rerun-model")}
    first = deploy_tested(work, refs, "9", "rerun", golden=False)
    assert first.commit == run(work, "rev-parse", "HEAD").strip()
    assert {p.name for p in first.changed} == {
        "kustomization.yaml",
        "model-rollout.yaml",
        "worker-rollout.yaml",
    }
    again = deploy_tested(work, refs, "9", "rerun", golden=False)
    assert again == Deployed([], None)
    assert run(work, "rev-parse", "HEAD").strip() == first.commit
