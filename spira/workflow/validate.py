"""Strict validation of the continuous-training objects against their upstream schemas, the same
validation `spira manifests check` runs on every rendered environment (spira/manifests/schemas.py).

Argo Workflows kinds are validated like the Rollout (closed objects, core types through
kubernetes-validate) against the CRD excerpts `python -m spira.manifests.vendor_argo` wrote into
spira/manifests/crds/. Argo Events kinds carry no schema in their CRDs, so they are validated against Argo
Events' own JSON schema (spira/manifests/crds/argo-events.json), made strict the same way: an unknown field
is an error, never silently pruned.
"""

from __future__ import annotations

from typing import Any

from spira.manifests import contracts, schemas

WORKFLOW_CRDS = {
    key: name for key, name in schemas.CRD_FILES.items() if key[1] in ("WorkflowTemplate", "CronWorkflow")
}


def workflow_schema(api_version: str, kind: str) -> dict[str, Any]:
    return schemas.crd_schema(api_version, kind)


def schema_errors(objects: list[dict[str, Any]]) -> list[str]:
    """Every schema error of the objects, as `Kind/name path: message`."""
    version = contracts.kubernetes_version()
    out = []
    for doc in objects:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        out += [f"{name} {e.path}: {e.message}" for e in schemas.validate(doc, version)]
    return out
