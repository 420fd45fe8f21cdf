"""Generated files under argocd/: which committed ones differ from what the declaration generates, and
writing them (`spira manifests golden`). Each generator (generate, queue_patches, training,
network_policies) maps path -> text; these two functions are the same for all of them."""

from __future__ import annotations

from pathlib import Path


def stale(files: dict[Path, str]) -> list[Path]:
    """Generated files whose committed text differs from what the declaration generates (or is missing)."""
    return [path for path, text in files.items() if not path.is_file() or path.read_text() != text]


def write(files: dict[Path, str]) -> list[Path]:
    """Write the files that differ; returns them."""
    written = stale(files)
    for path in written:
        path.write_text(files[path])
    return written
