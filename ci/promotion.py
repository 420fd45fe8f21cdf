"""The record of tested digests (commit trailers on `staging`) and the check that guards `main`.

Record: CI commits the digest it just tested to `staging` with trailers

    Spira-Tested-Image: spira-model@sha256:...
    Spira-Model-Version: 3
    Spira-Test-Run: https://github.com/.../actions/runs/123

Why trailers (docs/images.md has the longer argument): they are inside the commit, so its hash covers
them and they cannot be added or changed afterwards (git notes can, and are not fetched by default); they
travel with the merge into `main` without any extra push; and they sit on the very commit that changed
the digest line, so "tested" and "deployed from staging" are one fact. A status file in the tree could be
edited in the same pull request as the digest it vouches for.

Check: on the `main` candidate, every image digest in argocd/base/kustomization.yaml must equal the one
recorded by the newest trailer commit shared with `staging`, and that commit's own tree must carry it.
The training image is deployed by no resource of the base: `spira workflow render` reads its pin from
there for every step of the WorkflowTemplate, so a second pin of it anywhere else in the candidate's tree
(a digest written into a manifest, the Pulumi program or a workflow) is refused: one source.

Trust: the trailers say which digest staging deployed, but any commit on `staging` could carry them. What
makes a digest promotable is CI's signature over it and its signed provenance (ci/signing.py): with a
`SignatureCheck`, each digest must be signed by the CI key in its registry, with a provenance that records
a passing ephemeral test and the SBOM beside it. A tampered image (the same tag, other bytes) has another
digest, which nothing signed; an unsigned digest is refused the same way.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ci.set_image import (
    KUSTOMIZATION,
    KUSTOMIZE_NAMES,
    MODEL_ROLLOUTS,
    MODEL_VERSION_ANNOTATION,
    image_entries,
    parse_digest,
    set_image,
)

TESTED = "Spira-Tested-Image"
MODEL_VERSION = "Spira-Model-Version"
TEST_RUN = "Spira-Test-Run"
# The promotion's evidence bundle (spira/evidence): its object-store location and content hash.
EVIDENCE = "Spira-Evidence"
FIELD, RECORD = "\x1f", "\x1e"


# Images whose digest may appear nowhere else in the tree than the kustomization and its renders (the
# golden files): the base's WorkflowTemplate names the training image by its kustomize name only, and a
# copy pinned elsewhere (a hand-written template, a script) would run an image nobody promoted. Docs and
# tests quote example digests.
SINGLE_PIN = {"spira-training"}
SECOND_PIN_EXCLUDES = (":!docs", ":!tests", ":!argocd/golden", f":!{KUSTOMIZATION}")


class GitError(RuntimeError):
    pass


def git(root: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout if proc.returncode == 0 else ""


@dataclass(frozen=True)
class TestedRecord:
    commit: str
    image: str  # kustomize name
    digest: str
    model_version: str | None
    run: str | None


def trailers(
    tested: dict[str, str], run: str, model_version: str | None = None, evidence: str | None = None
) -> list[str]:
    """Trailer lines for one deploy commit: each image (ci name -> digest) tested together in `run`, and
    the promotion's evidence bundle (`s3://... sha256:...`) when there is one."""
    out = [f"{TESTED}: {KUSTOMIZE_NAMES[image]}@{digest}" for image, digest in sorted(tested.items())]
    if model_version is not None:
        out.append(f"{MODEL_VERSION}: {model_version}")
    out.append(f"{TEST_RUN}: {run}")
    if evidence:
        out.append(f"{EVIDENCE}: {evidence}")
    return out


def commit_record(root: Path, paths: list[Path], message: str, trailer_lines: list[str]) -> str:
    """Commit exactly `paths` with the trailers; returns the new commit."""
    args = ["commit", "-q", "-m", message]
    for line in trailer_lines:
        args += ["--trailer", line]
    git(root, "add", "--", *map(str, paths))
    git(root, *args, "--", *map(str, paths))
    return git(root, "rev-parse", "HEAD").strip()


def tested_records(root: Path, rev: str) -> list[TestedRecord]:
    """Every test record reachable from `rev`, newest first."""
    fmt = (
        f"%H{FIELD}%(trailers:key={TESTED},valueonly,separator=%x1d){FIELD}"
        f"%(trailers:key={MODEL_VERSION},valueonly){FIELD}%(trailers:key={TEST_RUN},valueonly){RECORD}"
    )
    out = git(root, "log", f"--format={fmt}", rev)
    records = []
    for chunk in out.split(RECORD):
        parts = chunk.strip("\n").split(FIELD)
        if len(parts) != 4 or not parts[1].strip():
            continue
        commit, tested, version, run = parts
        for ref in tested.strip().split("\x1d"):
            name, _, digest = ref.strip().partition("@")
            records.append(TestedRecord(commit, name, digest, version.strip() or None, run.strip() or None))
    return records


@dataclass(frozen=True)
class SignatureCheck:
    """Verify each digest's signed records with CI's public key; `registry` (host:port) replaces the host
    of the kustomization's newName (a loopback stand-in for the release registry), None keeps it."""

    public_key_pem: bytes
    registry: str | None = None

    def repository(self, new_name: str) -> str:
        if self.registry is None:
            return new_name
        return f"{self.registry}/{new_name.split('/', 1)[1]}"


def _signed(check: SignatureCheck, kname: str, new_name: str, digest: str) -> tuple[bool, str]:
    from ci.oci import Registry, split_repository
    from ci.signing import VerificationError, verify_image

    repository = check.repository(new_name)
    try:
        trusted = verify_image(
            Registry(split_repository(repository)[0]), repository, digest, check.public_key_pem
        )
    except (VerificationError, ValueError) as exc:
        return False, f"REFUSED {kname}: {exc}"
    return True, (
        f"SIGNED {kname}@{digest}: CI's signature and provenance verify (revision {trusted.revision[:12]}, "
        f"run {trusted.invocation}, SBOM of {trusted.sbom_components} components)"
    )


@dataclass(frozen=True)
class Verdict:
    ok: bool
    lines: list[str]


def _short(commit: str) -> str:
    return commit[:10]


def second_pins(root: Path, rev: str, new_name: str) -> list[str]:
    """Files of `rev` outside the kustomization (docs and tests aside) that pin `new_name` by digest."""
    repository = new_name.split("/", 1)[1] if "/" in new_name else new_name
    pattern = re.escape(repository) + "@sha256:[0-9a-f]{64}"
    out = git(root, "grep", "-l", "-E", pattern, rev, "--", ".", *SECOND_PIN_EXCLUDES, check=False)
    return sorted(line.split(":", 1)[1] for line in out.splitlines() if ":" in line)


def verify_promotion(
    root: Path,
    candidate: str = "HEAD",
    staging: str = "origin/staging",
    signatures: SignatureCheck | None = None,
) -> Verdict:
    lines: list[str] = []
    try:
        cand = git(root, "rev-parse", "--verify", f"{candidate}^{{commit}}").strip()
        stage = git(root, "rev-parse", "--verify", f"{staging}^{{commit}}").strip()
    except GitError as exc:
        return Verdict(False, [f"REFUSED: {exc}"])
    base = git(root, "merge-base", cand, stage, check=False).strip()
    if not base:
        return Verdict(
            False, [f"REFUSED: {candidate} shares no history with {staging}; promote by merging it"]
        )
    records = tested_records(root, base)
    ever_tested = {(r.image, r.digest) for r in tested_records(root, stage)}
    entries = image_entries(git(root, "show", f"{cand}:{KUSTOMIZATION}"))
    ok = True
    for kname in KUSTOMIZE_NAMES.values():
        entry = entries.get(kname)
        if entry is None:
            continue
        if signatures is not None:
            signed, line = _signed(signatures, kname, entry.new_name, entry.digest)
            lines.append(line)
            if not signed:
                ok = False
                continue
        if kname in SINGLE_PIN and (copies := second_pins(root, cand, entry.new_name)):
            ok = False
            lines.append(
                f"REFUSED {kname}: pinned again in {', '.join(copies)}; the WorkflowTemplate takes its image "
                f"from {KUSTOMIZATION} only (kustomize's images), so promote it with set-image --training"
            )
            continue
        mine = next((r for r in records if r.image == kname), None)
        if mine is None:
            ok = False
            lines.append(
                f"REFUSED {kname}: no commit shared with {staging} records a test of it "
                f"(trailer {TESTED}); {entry.digest} was never tested on staging"
            )
            continue
        deployed = image_entries(git(root, "show", f"{mine.commit}:{KUSTOMIZATION}")).get(kname)
        if deployed is None or deployed.digest != mine.digest:
            ok = False
            lines.append(
                f"REFUSED {kname}: commit {_short(mine.commit)} records a test of {mine.digest} "
                f"but does not deploy it ({KUSTOMIZATION} there has "
                f"{deployed.digest if deployed else 'no entry'})"
            )
            continue
        if entry.digest != mine.digest:
            ok = False
            if (kname, entry.digest) in ever_tested:
                why = "it was tested once, but staging has deployed a newer image since"
            else:
                why = "that digest was never tested on staging (a hand edit on main?)"
            lines.append(
                f"REFUSED {kname}: {candidate} carries {entry.digest}, but the image tested and "
                f"deployed from {staging} is {mine.digest} (commit {_short(mine.commit)}); {why}. "
                f"Promote by merging {staging} into main, never by editing the digest"
            )
            continue
        if kname == KUSTOMIZE_NAMES["model"] and mine.model_version is not None:
            # the HTTP service and the queue workers run the same bundle: both Rollouts announce its version
            wrong = [
                (rollout, served)
                for rollout in MODEL_ROLLOUTS
                if (served := _annotation(git(root, "show", f"{cand}:{rollout}"))) != mine.model_version
            ]
            if wrong:
                ok = False
                lines += [
                    f"REFUSED {kname}: the Rollout {rollout} announces model version {served!r} but the "
                    f"tested image serves {mine.model_version!r} (commit {_short(mine.commit)})"
                    for rollout, served in wrong
                ]
                continue
        lines.append(
            f"OK {kname}@{entry.digest}: tested and deployed from {staging} in commit "
            f"{_short(mine.commit)}" + (f" ({mine.run})" if mine.run else "")
        )
    if not any(line.startswith(("OK", "REFUSED")) for line in lines):
        ok = False
        lines.append(f"REFUSED: {KUSTOMIZATION} on {candidate} names no image")
    return Verdict(ok, lines)


def _annotation(rollout_text: str) -> str | None:
    import yaml

    doc = yaml.safe_load(rollout_text)
    value = (doc.get("metadata", {}).get("annotations") or {}).get(MODEL_VERSION_ANNOTATION)
    return None if value is None else str(value)


@dataclass(frozen=True)
class Deployed:
    changed: list[Path]
    commit: str | None  # None: nothing changed, so nothing was recorded


def deploy_tested(
    root: Path,
    refs: dict[str, str],
    model_version: str | None,
    record: str | None,
    golden: bool = True,
    evidence: str | None = None,
) -> Deployed:
    """set-image for each tested image ({"model": ref, "loadtest": ref}), then (with `record`) one commit
    with the trailers. Digests already deployed change nothing and record nothing: a rerun is a no-op."""
    changed: list[Path] = []
    for image, ref in refs.items():
        last = image == list(refs)[-1]
        changed += set_image(
            root, image, ref, model_version if image == "model" else None, golden=golden and last
        ).changed
    changed = list(dict.fromkeys(changed))
    if not record or not changed:
        return Deployed(changed, None)
    digests = {image: parse_digest(ref) for image, ref in refs.items()}
    commit = commit_record(
        root,
        sorted(changed),
        "images: deploy tested digests",
        trailers(digests, record, model_version if "model" in refs else None, evidence),
    )
    return Deployed(changed, commit)
