"""`spira promote revert --env staging` on a real git origin: back to the last digest that passed, once per
abort, and exit 2 when nothing earlier passed. Golden files are left to set-image's own tests (speed)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from ci import promotion
from ci.promotion import commit_record, git, trailers, verify_promotion
from ci.revert import REVERTED
from ci.set_image import KUSTOMIZATION, ROLLOUT, image_entries, set_image

REPO = Path(__file__).resolve().parents[3]


def fake_digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def deploy(repo: Path, version: str) -> str:
    """What the staging workflow records after a passing ephemeral test (set-image + trailers)."""
    model, loadtest = fake_digest(f"model-{version}"), fake_digest(f"loadtest-{version}")
    intake, training = fake_digest(f"intake-{version}"), fake_digest(f"training-{version}")
    changed = set_image(repo, "loadtest", loadtest, golden=False).changed
    changed += set_image(repo, "intake", intake, golden=False).changed
    changed += set_image(repo, "training", training, golden=False).changed
    changed += set_image(repo, "model", model, model_version=version, golden=False).changed
    commit_record(
        repo,
        sorted(set(changed)),
        f"images: deploy {version}",
        trailers(
            {"model": model, "loadtest": loadtest, "intake": intake, "training": training},
            f"run-{version}",
            version,
        ),
    )
    return model


def spira_revert(repo: Path, analysis: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "spira.cli",
            "promote",
            "revert",
            "--env",
            "staging",
            "--repo",
            str(repo),
            "--analysis",
            analysis,
            "--no-signatures",
            "--no-golden",
            "--push",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def gitops(tmp_path_factory) -> Path:
    """A bare origin from the committed HEAD and a staging clone with three promotions, v1 → v2 → v3."""
    base = tmp_path_factory.mktemp("revert")
    origin = base / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", "--no-hardlinks", str(REPO), str(origin)], check=True)
    git(origin, "branch", "-f", "staging", "HEAD")
    clone = base / "gitops"
    subprocess.run(["git", "clone", "-q", "-b", "staging", str(origin), str(clone)], check=True)
    git(clone, "config", "user.email", "ci@spira.test")
    git(clone, "config", "user.name", "spira ci")
    for version in ("1", "2", "3"):
        deploy(clone, version)
    git(clone, "push", "-q", "origin", "staging")
    return clone


def deployed(repo: Path) -> str:
    return image_entries((repo / KUSTOMIZATION).read_text())["spira-model"].digest


def test_by_default_the_target_must_verify_and_an_unverifiable_one_reverts_nothing(
    gitops: Path, tmp_path: Path
):
    from ci.signing import generate_key

    _, public = generate_key(tmp_path / "keys")
    before = git(gitops, "rev-parse", "HEAD")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "spira.cli",
            "promote",
            "revert",
            "--env",
            "staging",
            "--repo",
            str(gitops),
            "--public-key",
            str(public),
            "--registry",
            "127.0.0.1:9",
            "--no-golden",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no earlier passing digest" in proc.stderr and "REFUSED spira-model" in proc.stderr
    assert git(gitops, "rev-parse", "HEAD") == before, "nothing committed"
    assert deployed(gitops) == fake_digest("model-3")


def test_an_aborted_rollout_is_reverted_to_the_previous_passing_digest_then_the_one_before(gitops: Path):
    assert deployed(gitops) == fake_digest("model-3")
    first = spira_revert(gitops, "AnalysisRun spira-model-error-rate: Failed (error rate 0.31 > 0.05)")
    assert first.returncode == 0, first.stderr
    assert deployed(gitops) == fake_digest("model-2")
    assert 'spira.dev/model-version: "2"' in (gitops / ROLLOUT).read_text()
    body = git(gitops, "show", "-s", "--format=%B", "HEAD")
    assert "error rate 0.31 > 0.05" in body
    assert f"{REVERTED}: spira-model@{fake_digest('model-3')}" in body
    assert git(gitops, "rev-parse", "HEAD") == git(gitops, "rev-parse", "origin/staging"), "pushed"
    # the revert is itself a record of what it restores: the newest record names v2 and its run
    newest = next(r for r in promotion.tested_records(gitops, "HEAD") if r.image == "spira-model")
    assert (newest.digest, newest.model_version, newest.run) == (fake_digest("model-2"), "2", "run-2")

    second = spira_revert(gitops, "AnalysisRun: Failed again")
    assert second.returncode == 0, second.stderr
    assert deployed(gitops) == fake_digest("model-1"), "v3 was reverted once: it is never restored"

    before = git(gitops, "rev-parse", "HEAD")
    third = spira_revert(gitops, "AnalysisRun: Failed a third time")
    assert third.returncode == 2
    assert "no earlier passing digest" in third.stderr
    assert git(gitops, "rev-parse", "HEAD") == before, "nothing committed"


def test_a_reverted_staging_still_promotes_to_main(gitops: Path, tmp_path: Path):
    main = tmp_path / "main"
    subprocess.run(["git", "clone", "-q", str(gitops / ".git"), str(main)], check=True)
    git(main, "config", "user.email", "ci@spira.test")
    git(main, "config", "user.name", "spira ci")
    git(main, "checkout", "-q", "-B", "candidate", "origin/staging")
    verdict = verify_promotion(main, "HEAD", "origin/staging")
    assert verdict.ok, verdict.lines


def test_an_unknown_environment_exits_2(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "spira.cli", "promote", "revert", "--env", "qa", "--repo", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2 and "unknown environment 'qa'" in proc.stderr
