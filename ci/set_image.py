"""Write a tested digest into the GitOps base: the `digest:` line of one `images:` entry, nothing else.

Text edits, not a YAML round trip: a dump would reflow the file and drop its comments, and the point of
the change is a one-line diff a reviewer can read. The result is re-parsed and compared with the original
so any other difference is an error rather than a surprise in a pull request.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

KUSTOMIZATION = Path("argocd/base/kustomization.yaml")
ROLLOUT = Path("argocd/base/model-rollout.yaml")
# The queue workers run the model image too (the same `images:` entry, so the same digest): the same
# set-image commit announces the same model version on both Rollouts, and the worker gate checks it.
WORKER_ROLLOUT = Path("argocd/base/worker-rollout.yaml")
MODEL_ROLLOUTS = (ROLLOUT, WORKER_ROLLOUT)
MODEL_VERSION_ANNOTATION = "spira.dev/model-version"
# kustomize image name -> ci image name (repository spira/<image> in the registry)
KUSTOMIZE_NAMES = {
    "model": "spira-model",
    "loadtest": "spira-loadtest",
    "intake": "spira-intake",
    # The training image: no resource of argocd/base names it; its pin here is what `spira workflow render`
    # puts in every step of the WorkflowTemplate (spira/workflow/render.py `pinned_image`).
    "training": "spira-training",
}
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


class SetImageError(ValueError):
    pass


@dataclass(frozen=True)
class ImageEntry:
    name: str
    new_name: str
    digest: str


def parse_digest(ref_or_digest: str) -> str:
    """`sha256:...` from a digest or a `name@sha256:...` reference."""
    digest = ref_or_digest.rsplit("@", 1)[-1].strip()
    if not DIGEST_RE.match(digest):
        raise SetImageError(f"not an image digest: {ref_or_digest!r} (expected [name@]sha256:<64 hex>)")
    return digest


def image_entries(kustomization_text: str) -> dict[str, ImageEntry]:
    doc = yaml.safe_load(kustomization_text) or {}
    return {
        item["name"]: ImageEntry(item["name"], item.get("newName", item["name"]), item.get("digest", ""))
        for item in doc.get("images") or []
    }


def pinned_ref(kustomization_text: str, image: str) -> str:
    """`newName@sha256:...` of one image (ci name) as the kustomization pins it."""
    entry = image_entries(kustomization_text).get(KUSTOMIZE_NAMES[image])
    if entry is None or not DIGEST_RE.match(entry.digest):
        raise SetImageError(f"{KUSTOMIZATION}: no `{KUSTOMIZE_NAMES[image]}` entry with a sha256 digest")
    return f"{entry.new_name}@{entry.digest}"


def replace_digest(text: str, kustomize_name: str, digest: str) -> str:
    """The kustomization with the `digest:` of `kustomize_name` replaced; exactly one line differs."""
    parse_digest(digest)
    lines = text.splitlines(keepends=True)
    in_entry = False
    for i, line in enumerate(lines):
        item = re.match(r"^\s*-\s+name:\s*(\S+)\s*$", line)
        if item:
            in_entry = item.group(1).strip("\"'") == kustomize_name
            continue
        if in_entry:
            m = re.match(r"^(\s+digest:\s*)(\S+)(\s*)$", line)
            if m:
                lines[i] = f"{m.group(1)}{digest}{m.group(3)}"
                new = "".join(lines)
                _only_digest_changed(text, new, kustomize_name, digest)
                return new
    raise SetImageError(f"{KUSTOMIZATION}: no images entry `{kustomize_name}` with a digest line")


def _only_digest_changed(old: str, new: str, name: str, digest: str) -> None:
    before, after = yaml.safe_load(old), yaml.safe_load(new)
    for item in before["images"]:
        if item["name"] == name:
            item["digest"] = digest
    if before != after:
        raise SetImageError(f"{KUSTOMIZATION}: the edit changed more than the digest of {name}")


def replace_annotation(text: str, key: str, value: str, where: Path = ROLLOUT) -> str:
    pattern = re.compile(rf"^(\s+{re.escape(key)}:\s*)(\S.*?)(\s*)$", re.M)
    matches = pattern.findall(text)
    if len(matches) != 1:
        raise SetImageError(f"{where}: expected one `{key}:` annotation, found {len(matches)}")
    return pattern.sub(lambda m: f'{m.group(1)}"{value}"{m.group(3)}', text, count=1)


@dataclass(frozen=True)
class SetImageResult:
    changed: list[Path]
    digest: str
    model_version: str | None


def set_image(
    root: Path, image: str, ref_or_digest: str, model_version: str | None = None, golden: bool = True
) -> SetImageResult:
    if image not in KUSTOMIZE_NAMES:
        raise SetImageError(f"unknown image {image!r}; expected one of {sorted(KUSTOMIZE_NAMES)}")
    if image == "model" and not model_version:
        raise SetImageError("the model image needs --model-version (the Rollout's spira.dev/model-version)")
    digest = parse_digest(ref_or_digest)
    changed: list[Path] = []
    kust = root / KUSTOMIZATION
    text = kust.read_text()
    new = replace_digest(text, KUSTOMIZE_NAMES[image], digest)
    if new != text:
        kust.write_text(new)
        changed.append(KUSTOMIZATION)
    if image == "model":
        for relative in MODEL_ROLLOUTS:
            rollout = root / relative
            text = rollout.read_text()
            new = replace_annotation(text, MODEL_VERSION_ANNOTATION, str(model_version), relative)
            if new != text:
                rollout.write_text(new)
                changed.append(relative)
    if changed and golden:
        changed += regenerate_golden(root)
    return SetImageResult(changed, digest, model_version)


def regenerate_golden(root: Path) -> list[Path]:
    """`spira manifests golden` in `root`'s own code (a clone in tests, the checkout in CI)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, "-m", "spira.cli", "manifests", "golden"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SetImageError(f"`spira manifests golden` failed:\n{proc.stdout}{proc.stderr}")
    return [Path(line.split(" ", 1)[1]) for line in proc.stdout.splitlines() if line.startswith("wrote ")]
