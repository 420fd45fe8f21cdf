"""The local base image (Debian bookworm + python3 from debootstrap) and the pod infra image.

No registry is reachable here, so the `python:3.11-slim` base that hosted CI pins by digest cannot be
pulled; a debootstrap root filesystem imported with `podman import` stands in for it. Both images are
named by their recipe (suite, variant, packages, mirror, config): the same recipe is built once and
reused from the local store; a changed recipe gets a new name, so a stale base is never picked up.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ci.podman import Podman

BASE_REPO = "localhost/spira-base"
INFRA_REPO = "localhost/spira-infra"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class BaseRecipe:
    suite: str = "bookworm"
    variant: str = "minbase"
    # python3 is 3.11 on bookworm: the same minor as the project's venv, so its cp311 wheels install.
    packages: tuple[str, ...] = ("python3", "python3-venv", "ca-certificates")
    mirror: str = "http://deb.debian.org/debian"
    # Docker-style config the import sets (an imported root filesystem has no PATH and no CMD).
    changes: tuple[str, ...] = (f"ENV {PATH_ENV}", 'CMD ["python3"]')

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def image(self) -> str:
        return f"{BASE_REPO}:{self.suite}-{self.key()}"


@dataclass(frozen=True)
class InfraRecipe:
    """The pod's infra (pause) container: the base with a CMD that waits forever and stops on SIGKILL."""

    base: BaseRecipe = field(default_factory=BaseRecipe)
    changes: tuple[str, ...] = ('CMD ["sleep", "infinity"]', "STOPSIGNAL SIGKILL")

    @property
    def image(self) -> str:
        blob = json.dumps([self.base.key(), *self.changes]).encode()
        return f"{INFRA_REPO}:{hashlib.sha256(blob).hexdigest()[:16]}"


def debootstrap(recipe: BaseRecipe, target: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap; `make sysdeps`)")
    cmd = [
        "debootstrap",
        f"--variant={recipe.variant}",
        f"--include={','.join(recipe.packages)}",
        recipe.suite,
        str(target),
        recipe.mirror,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"debootstrap failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    # apt's package lists and caches are not needed at run time and only make the image bigger.
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for child in (target / sub).glob("*"):
            if child.is_file():
                child.unlink()


def _import(podman: Podman, rootfs: Path, image: str, changes: tuple[str, ...]) -> None:
    args = ["import"]
    for change in changes:
        args += ["--change", change]
    tar = subprocess.run(
        ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], capture_output=True, check=True
    )
    podman(*args, "-", image, stdin=tar.stdout)


def ensure_base(podman: Podman, recipe: BaseRecipe | None = None, say=print) -> str:
    recipe = recipe or BaseRecipe()
    if podman.image_exists(recipe.image):
        return recipe.image
    say(f"building base image {recipe.image} with debootstrap ({recipe.suite}, {recipe.variant})")
    with tempfile.TemporaryDirectory(prefix="spira-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        debootstrap(recipe, rootfs)
        _import(podman, rootfs, recipe.image, recipe.changes)
    return recipe.image


def ensure_infra(podman: Podman, recipe: InfraRecipe | None = None, say=print) -> str:
    """The infra image is the base with another config: a commit of a container, no second debootstrap."""
    recipe = recipe or InfraRecipe()
    if podman.image_exists(recipe.image):
        return recipe.image
    base = ensure_base(podman, recipe.base, say)
    say(f"building infra image {recipe.image}")
    name = f"spira-infra-build-{recipe.image.rsplit(':', 1)[1]}"
    podman("rm", "-f", "--ignore", name)
    podman("create", "--name", name, base, "true")
    try:
        args = ["commit", "-q"]
        for change in recipe.changes:
            args += ["--change", change]
        podman(*args, name, recipe.image)
    finally:
        podman("rm", "-f", "--ignore", name)
    return recipe.image
