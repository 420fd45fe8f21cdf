"""Idempotent reruns: a tested image is reused while nothing it is built from has changed.

The key is the model version plus the content of every tracked file that goes into the Bento or an image
(serving/, spira_core/, ci/, the pins, and each image's build context as ci/build.py stages it) or into the
test it passes (the training image's: the WorkflowTemplate's render). Same key and every image the
kustomization pins still in the registry: the builds, pushes and ephemeral tests are skipped, and the same
digests go on to preview, gate and promotion.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

IMAGE_SOURCES = ("serving", "spira_core", "ci", "pyproject.toml", "requirements.lock", "spira/workflow")
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
    )
)


def built_from(images: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """What the images are built from: IMAGE_SOURCES plus each one's Containerfile and context (ci/build.py)."""
    from ci.build import IMAGES

    paths = [*IMAGE_SOURCES]
    for image in images:
        spec = IMAGES[image]
        paths += [spec.containerfile, *(src for src in spec.context if not src.startswith("build/"))]
    return tuple(dict.fromkeys(paths))


def source_key(repo: Path, model_version: str, images: tuple[str, ...] | list[str] = ("model",)) -> str:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *built_from(images)], cwd=repo, capture_output=True, check=True
    )
    digest = hashlib.sha256(f"model {model_version}\n".encode())
    for name in sorted(p for p in listed.stdout.decode().split("\0") if p):
        path = repo / name
        if path.is_file():  # a tracked file deleted in the work tree counts as absent
            digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:20]


def in_registry(ref: str, timeout_s: float = 5.0) -> bool:
    """Whether `host:port/name@sha256:…` is still served by its (loopback, plain HTTP) registry."""
    host, _, rest = ref.partition("/")
    name, _, digest = rest.partition("@")
    req = urllib.request.Request(
        f"http://{host}/v2/{name}/manifests/{digest}", method="HEAD", headers={"Accept": MANIFEST_TYPES}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def reusable(record_file: Path, key: str, images: tuple[str, ...] | list[str]) -> dict | None:
    """The recorded build for `key` if it has every one of `images` and they are still in the registry."""
    try:
        record = json.loads(record_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    refs = record.get("images")
    if record.get("key") != key or not isinstance(refs, dict):
        return None
    if not all(isinstance(refs.get(i), str) and in_registry(refs[i]) for i in images):
        return None
    return record


def save(record_file: Path, key: str, **facts: object) -> None:
    record_file.write_text(json.dumps({"key": key, **facts}, indent=2) + "\n")
