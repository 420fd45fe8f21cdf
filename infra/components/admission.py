"""Admission: Kyverno, and the policy that a pod runs a SPIRA image only as CI signed and tested it.

The policy is infra/admission/verify-images-clusterpolicy.yaml as it stands (validated against Kyverno's CRD
schema by the unit tests): an image of the release registry's spira/ repositories must be referenced by
digest and carry CI's cosign signature, signed SLSA provenance (this project's build, a passing ephemeral
test) and SBOM, the records `spira image verify-promotion` checks before the merge. CI's public key is the
Secret kyverno/spira-image-signing (key `cosign.pub`), created by the operator from the same cosign.pub as
the repository variable IMAGE_SIGNING_PUBLIC_KEY (docs/images.md); until it exists the policy fails closed.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra import contracts
from infra.components.helm import pinned_release

NAMESPACE = "kyverno"
POLICY_FILE = contracts.INFRA_DIR / "admission" / "verify-images-clusterpolicy.yaml"
# A webhook that fails closed must stay up: three admission controllers spread over the nodes.
VALUES = {"admissionController": {"replicas": 3}}


def verify_images_policy() -> dict:
    return yaml.safe_load(POLICY_FILE.read_text())


class Admission(pulumi.ComponentResource):
    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:platform:Admission", name, None, opts)
        self.release = pinned_release(name, "kyverno", NAMESPACE, VALUES, pulumi.ResourceOptions(parent=self))
        doc = verify_images_policy()
        self.policy = k8s.apiextensions.CustomResource(
            f"{name}-verify-images",
            api_version=doc["apiVersion"],
            kind=doc["kind"],
            metadata=doc["metadata"],
            spec=doc["spec"],
            # the ClusterPolicy kind exists once the chart has installed Kyverno's CRDs
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
        )
        self.register_outputs({"release": self.release.name, "policy": doc["metadata"]["name"]})
