"""Per-image wheelhouses, downloaded on the host and installed with `pip install --no-index` in the build.

Inside a build there is no trusted TLS to PyPI (and a hermetic build should not need it): the host
downloads exactly the wheels one image needs, pinned by requirements.lock, into a directory named by what
went into it (requirement names, the lock, the torch flavour). The same inputs reuse the same directory.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path(".spira/wheels")
STAMP = ".complete"

# The torch build per flavour: the local version label and the index that carries it. The CPU build is
# what requirements.lock pins; the CUDA build is the same torch version for the GPU nodes' image.
TORCH_FLAVOURS: dict[str, str] = {"cpu": "cpu", "cuda": "cu128"}
TORCH_INDEX = "https://download.pytorch.org/whl/{label}"


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pyproject_requirements(pyproject: Path, extras: Sequence[str]) -> list[str]:
    """Names of the project's base dependencies plus the given extras (versions come from the lock)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    names = [_name(r) for r in project["dependencies"]]
    for extra in extras:
        names += [_name(r) for r in project["optional-dependencies"][extra]]
    return sorted(set(names))


def requirements_file(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return sorted({_name(line) for line in lines if line})


def flavoured_constraints(lock_text: str, flavour: str) -> str:
    """The lock with torch pinned to the flavour's build (same version, another local label)."""
    if flavour not in TORCH_FLAVOURS:
        raise ValueError(f"unknown torch flavour {flavour!r}; choose one of {sorted(TORCH_FLAVOURS)}")
    label = TORCH_FLAVOURS[flavour]

    def swap(match: re.Match) -> str:
        return f"torch=={match.group(1)}+{label}"

    out, count = re.subn(r"^torch==([0-9][^+\s]*)(?:\+\S+)?$", swap, lock_text, flags=re.M)
    if count != 1:
        raise ValueError("requirements.lock must pin torch exactly once (torch==X.Y.Z[+label])")
    return out


@dataclass(frozen=True)
class WheelhouseSpec:
    image: str
    requirements: tuple[str, ...]
    lock_text: str
    torch_flavour: str = "cpu"

    def constraints(self) -> str:
        if "torch" not in self.requirements:
            return self.lock_text
        return flavoured_constraints(self.lock_text, self.torch_flavour)

    def key(self) -> str:
        blob = "\n".join([self.image, self.torch_flavour, *self.requirements, self.constraints()])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def directory(self, root: Path) -> Path:
        flavour = f"-{self.torch_flavour}" if "torch" in self.requirements else ""
        return root / f"{self.image}{flavour}-{self.key()}"


def ensure_wheelhouse(
    spec: WheelhouseSpec,
    root: Path = DEFAULT_ROOT,
    torch_index_url: str | None = None,
    python: str = sys.executable,
    say=print,
) -> Path:
    """Download the wheels once; a directory with its stamp is complete and reused as it is."""
    target = spec.directory(root.resolve())
    if (target / STAMP).exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    (target / "requirements.in").write_text("\n".join(spec.requirements) + "\n")
    (target / "constraints.txt").write_text(spec.constraints())
    cmd = [
        python,
        "-m",
        "pip",
        "download",
        "-q",
        "--only-binary=:all:",
        "--dest",
        str(target),
        "-c",
        str(target / "constraints.txt"),
        "-r",
        str(target / "requirements.in"),
    ]
    if torch_index_url:
        cmd += ["--extra-index-url", torch_index_url]
    say(f"downloading wheels for {spec.image} into {target}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip download for {spec.image} failed:\n{proc.stderr[-3000:]}")
    (target / STAMP).write_text(spec.key() + "\n")
    return target
