"""After the ephemeral test: the SBOM of the tested image, then CI's signature and signed provenance beside it.

One function for CI (`python -m ci.workflow publish`), the demo and `spira image sign`: the image must be
local (the SBOM is read by running it) and pushed (the records are stored beside its digest). The key is
CI's secret (`SPIRA_SIGNING_KEY`, PEM) or, locally, the stack's own pair ($SPIRA_HOME/signing).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from ci.build import BASE_LABEL, IMAGES, REPO_ROOT, git_source
from ci.oci import Registry
from ci.podman import Podman
from ci.sbom import cyclonedx, inventory
from ci.signing import KEY_ENV, BuildFacts, Signed, sign_image

REVISION_LABEL = "org.opencontainers.image.revision"


def signing_key(path: Path | None) -> bytes:
    """--key FILE, else the CI secret in SPIRA_SIGNING_KEY; nothing else is ever used to sign."""
    if path is not None:
        return path.read_bytes()
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV].encode()
    raise FileNotFoundError(f"no signing key: give --key FILE or set {KEY_ENV} (CI's secret)")


def builder_and_run() -> tuple[str, str]:
    """The builder id and the run that built: the GitHub workflow and run URL in CI, the host locally."""
    env = os.environ
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        builder = f"{server}/{env.get('GITHUB_WORKFLOW_REF', env['GITHUB_REPOSITORY'])}"
        return builder, f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    host = socket.gethostname()
    return f"local:{host}", f"local:{host}:{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def sign_tested(
    podman: Podman,
    registry: str,
    image: str,
    local_ref: str,
    digest: str,
    key_pem: bytes,
    report: bytes,
    passed: bool,
    base_image: str,
    parameters: dict[str, str] | None = None,
    root: Path = REPO_ROOT,
    repository: str | None = None,
) -> Signed:
    """SBOM (from the image itself) + signature + SLSA provenance for `registry/spira/<image>@digest`."""
    repository = repository or f"{registry}/spira/{image}"
    labels = json.loads(podman.text("image", "inspect", "--format", "{{json .Labels}}", local_ref)) or {}
    lock = (root / "requirements.lock").read_bytes()
    sbom = cyclonedx(image, repository, digest, inventory(podman, local_ref), lock.decode())
    builder, run = builder_and_run()
    facts = BuildFacts(
        image=image,
        source=labels.get("org.opencontainers.image.source") or git_source(root),
        revision=labels.get(REVISION_LABEL, ""),
        builder=builder,
        invocation=run,
        containerfile=IMAGES[image].containerfile,
        lock_sha256=hashlib.sha256(lock).hexdigest(),
        base_image=base_image or labels.get(BASE_LABEL, "unknown"),
        test_report=report,
        test_passed=passed,
        parameters=parameters or {},
        finished=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return sign_image(Registry(registry), repository, digest, key_pem, facts, sbom)
