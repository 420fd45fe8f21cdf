"""The SBOM of a built image: CycloneDX 1.6 JSON of what is installed IN the image, read by running it.

A few lines of standard-library Python run inside the image (no network, read-only): every distribution
its Python environment holds (importlib.metadata) and every Debian package (dpkg's status file). Python
components carry the sha256 requirements.lock lists for their pin, so the SBOM ties each wheel back to the
hash `pip install --require-hashes` checked. The document is stored signed beside the image
(ci/signing.py, an in-toto attestation) and its digest is named in the image's provenance.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from ci.lock import canonical, parse_lock
from ci.podman import Podman

INVENTORY = r"""
import json, sys, importlib.metadata as md
py = sorted({(d.metadata["Name"], d.version) for d in md.distributions() if d.metadata["Name"]})
deb, cur = [], {}
try:
    text = open("/var/lib/dpkg/status", encoding="utf-8", errors="replace").read()
except OSError:
    text = ""
for block in text.split("\n\n"):
    f = dict(l.split(": ", 1) for l in block.splitlines() if ": " in l and not l.startswith(" "))
    if f.get("Package") and "installed" in f.get("Status", "").split()[-1:]:
        deb.append((f["Package"], f.get("Version", ""), f.get("Architecture", "")))
print(json.dumps({"python": py, "deb": sorted(deb), "python_version": sys.version.split()[0]}))
"""


def inventory(podman: Podman, image_ref: str) -> dict:
    """Run the image (no network, read-only, never pulled) and list what it has installed."""
    out = podman.text(
        "run", "--rm", "--network", "none", "--read-only", "--pull", "never",
        "--entrypoint", "python3", image_ref, "-c", INVENTORY,
    )  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def cyclonedx(
    image: str, repository: str, digest: str, found: dict, lock_text: str, now: datetime | None = None
) -> dict:
    """CycloneDX 1.6: the image as the described component, its Python and Debian packages as components."""
    pins = parse_lock(lock_text)
    components = []
    for name, version in found["python"]:
        comp = {
            "type": "library",
            "bom-ref": f"pkg:pypi/{canonical(name)}@{version}",
            "name": name,
            "version": version,
            "purl": f"pkg:pypi/{canonical(name)}@{version}",
        }
        pin = pins.get(canonical(name))
        if pin is not None and pin.version == version:
            comp["hashes"] = [{"alg": "SHA-256", "content": h.removeprefix("sha256:")} for h in pin.hashes]
        components.append(comp)
    for name, version, arch in found["deb"]:
        purl = f"pkg:deb/debian/{name}@{version}" + (f"?arch={arch}" if arch else "")
        components.append(
            {"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl}
        )
    hexpart = digest.removeprefix("sha256:")
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{repository}@{digest}')}",
        "version": 1,
        "metadata": {
            "timestamp": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "spira ci.sbom", "version": "1"}]},
            "component": {
                "type": "container",
                "bom-ref": f"pkg:oci/{image}@sha256%3A{hexpart}",
                "name": repository,
                "version": digest,
                "purl": f"pkg:oci/{image}@sha256%3A{hexpart}?repository_url={repository}",
                "properties": [{"name": "python:version", "value": found.get("python_version", "")}],
            },
        },
        "components": components,
    }
