"""Automatic revert, the GitOps way: the environment branch back to the last digest that passed.

When a post-promotion analysis aborts a rollout, Argo Rollouts scales the bad colour down, but the
environment branch still names the bad digest: the next sync (or a pod restart) would bring it back. The
fix belongs in git. `spira promote revert --env ENV` makes one commit on the environment's branch that
puts back the images of the newest promotion record (trailer `Spira-Tested-Image`) that

- deploys a model digest other than the one now on the branch (the aborted one),
- is not itself a digest an earlier revert took away (trailer `Spira-Reverted-Image`),
- deployed what it records (its own tree carries the digest), and
- with a signature check, still carries CI's signature and signed provenance in its registry.

The commit carries the analysis evidence in its message and trailers of its own: `Spira-Reverted-Image`
(the aborted digest), and the target's `Spira-Tested-Image`/`Spira-Model-Version`/`Spira-Test-Run` copied
from the record it restores (the digests were tested there, by that run), so `verify-promotion` accepts
the branch again. No earlier passing digest: `RevertError`, exit 2, nothing committed.

`choose_target` is pure (records in, decision out); `revert` does the git around it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ci.promotion import (
    MODEL_VERSION,
    RECORD,
    TEST_RUN,
    TESTED,
    TestedRecord,
    commit_record,
    git,
    tested_records,
)
from ci.set_image import KUSTOMIZATION, KUSTOMIZE_NAMES, image_entries, set_image

REVERTED = "Spira-Reverted-Image"
REVERT_OF = "Spira-Revert-Of"
MODEL = KUSTOMIZE_NAMES["model"]


class RevertError(RuntimeError):
    """Nothing to revert to (or nothing to revert): the command exits 2 and commits nothing."""


@dataclass(frozen=True)
class Target:
    record: TestedRecord  # the model image's record
    images: dict[str, str]  # kustomize name -> digest, everything that commit recorded as tested together
    skipped: tuple[str, ...]  # why newer records were passed over, newest first


def choose_target(
    records: list[TestedRecord],
    current: str,
    reverted: set[str],
    deployed_by: Callable[[TestedRecord], str | None],
    trusted: Callable[[TestedRecord], tuple[bool, str]] = lambda r: (True, ""),
) -> Target:
    """The newest model record that passed and is not `current`. `records` newest first (every image);
    `deployed_by(r)`: the model digest r's own commit deploys; `trusted(r)`: the signature check."""
    skipped: list[str] = []
    for record in records:
        if record.image != MODEL:
            continue
        where = f"{record.digest} (commit {record.commit[:10]})"
        if record.digest == current:
            skipped.append(f"{where}: the digest being reverted")
            continue
        if record.digest in reverted:
            skipped.append(f"{where}: an earlier revert took it away")
            continue
        if deployed_by(record) != record.digest:
            skipped.append(f"{where}: its commit does not deploy it")
            continue
        ok, why = trusted(record)
        if not ok:
            skipped.append(f"{where}: {why}")
            continue
        images = {r.image: r.digest for r in records if r.commit == record.commit}
        return Target(record, images, tuple(skipped))
    detail = "; ".join(skipped) or "no promotion record at all"
    raise RevertError(f"no earlier passing digest to revert to from {current} ({detail})")


def reverted_digests(root: Path, rev: str) -> set[str]:
    out = git(root, "log", f"--format=%(trailers:key={REVERTED},valueonly,separator=%x1d){RECORD}", rev)
    return {
        ref.strip().partition("@")[2]
        for chunk in out.split(RECORD)
        for ref in chunk.strip().split("\x1d")
        if ref.strip()
    }


def revert_message(env: str, branch: str, bad: str, target: Target, analysis: str) -> str:
    r = target.record
    lines = [
        f"revert({env}): {MODEL} back to the last digest that passed",
        "",
        f"The rollout of {MODEL}@{bad} on {branch} was aborted by its analysis; this commit puts back",
        f"{MODEL}@{r.digest} (model version {r.model_version or '?'}), tested in {r.run or '?'} and",
        f"deployed by commit {r.commit[:10]}.",
        "",
        "Analysis evidence:",
        *[f"  {line}" for line in (analysis.strip() or "(none given)").splitlines()],
    ]
    if target.skipped:
        lines += ["", "Passed over:", *[f"  - {s}" for s in target.skipped]]
    return "\n".join(lines)


def revert_trailers(bad: str, bad_commit: str | None, target: Target) -> list[str]:
    r = target.record
    out = [f"{REVERTED}: {MODEL}@{bad}"]
    if bad_commit:
        out.append(f"{REVERT_OF}: {bad_commit}")
    out += [f"{TESTED}: {name}@{digest}" for name, digest in sorted(target.images.items())]
    if r.model_version:
        out.append(f"{MODEL_VERSION}: {r.model_version}")
    if r.run:
        out.append(f"{TEST_RUN}: {r.run}")
    return out


@dataclass(frozen=True)
class Reverted:
    commit: str
    bad: str
    target: Target
    message: str


def revert(
    root: Path,
    env: str,
    branch: str,
    analysis: str = "",
    trusted: Callable[[TestedRecord], tuple[bool, str]] = lambda r: (True, ""),
    golden: bool = True,
) -> Reverted:
    """One revert commit on `branch` (checked out in `root`); raises RevertError when nothing qualifies."""
    git(root, "checkout", "-q", branch)
    current = image_entries((root / KUSTOMIZATION).read_text()).get(MODEL)
    if current is None or not current.digest:
        raise RevertError(f"{KUSTOMIZATION} on {branch} names no {MODEL} digest")
    records = tested_records(root, "HEAD")
    bad_commit = next((r.commit for r in records if r.image == MODEL and r.digest == current.digest), None)

    def deployed_by(record: TestedRecord) -> str | None:
        entry = image_entries(git(root, "show", f"{record.commit}:{KUSTOMIZATION}")).get(MODEL)
        return entry.digest if entry else None

    target = choose_target(records, current.digest, reverted_digests(root, "HEAD"), deployed_by, trusted)
    by_kustomize = {v: k for k, v in KUSTOMIZE_NAMES.items()}
    changed: list[Path] = []
    names = sorted(target.images, key=lambda n: n == MODEL)  # the model last: it regenerates golden files
    for name in names:
        image = by_kustomize[name]
        version = target.record.model_version if image == "model" else None
        if image == "model" and not version:
            raise RevertError(f"record {target.record.commit[:10]} has no {MODEL_VERSION} trailer")
        changed += set_image(
            root, image, target.images[name], version, golden=golden and name == names[-1]
        ).changed
    message = revert_message(env, branch, current.digest, target, analysis)
    commit = commit_record(
        root, sorted(set(changed)), message, revert_trailers(current.digest, bad_commit, target)
    )
    return Reverted(commit, current.digest, target, message)
