"""Strict validation of the rendered workflow objects against their upstream schemas.

Argo Workflows kinds are validated like the Rollout (spira/manifests/schemas.py: closed objects, core
types through kubernetes-validate) against the CRD excerpts `python -m spira.manifests.vendor_argo` wrote
into spira/manifests/crds/. Argo Events kinds carry no schema in their CRDs, so they are validated against
Argo Events' own JSON schema (spira/manifests/crds/argo-events.json), made strict the same way: an unknown
field is an error, never silently pruned.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import jsonschema
import yaml

from spira.manifests import contracts
from spira.manifests.schemas import CRD_DIR, SchemaError, _path, _validator_class, strict

WORKFLOW_CRDS = {
    ("argoproj.io/v1alpha1", "WorkflowTemplate"): "workflowtemplate.yaml",
    ("argoproj.io/v1alpha1", "CronWorkflow"): "cronworkflow.yaml",
}
EVENTS_SCHEMA = CRD_DIR / "argo-events.json"


@cache
def workflow_schema(api_version: str, kind: str) -> dict[str, Any]:
    # libyaml's loader when present: the Argo Workflows excerpts are large
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((CRD_DIR / WORKFLOW_CRDS[(api_version, kind)]).read_text(), Loader=loader)
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == api_version.split("/")[1]]
    return strict(copy.deepcopy(served["schema"]["openAPIV3Schema"]))


@cache
def _events() -> dict[str, Any]:
    vendored = json.loads(EVENTS_SCHEMA.read_text())
    return {"kinds": vendored["kinds"], "definitions": strict(vendored["definitions"])}


def _errors(validator: Any, doc: dict[str, Any]) -> list[SchemaError]:
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [SchemaError(_path(e.absolute_path), e.message) for e in errors]


def workflow_errors(doc: dict[str, Any]) -> list[SchemaError]:
    schema = workflow_schema(doc["apiVersion"], doc["kind"])
    return _errors(_validator_class(contracts.kubernetes_version())(schema), doc)


def events_errors(doc: dict[str, Any]) -> list[SchemaError]:
    vendored = _events()
    root = vendored["kinds"].get(doc.get("kind"))
    if root is None or doc.get("apiVersion") != "argoproj.io/v1alpha1":
        return [SchemaError("(document)", f"no vendored Argo Events schema for {doc.get('kind')}")]
    schema = {"$ref": f"#/definitions/{root}", "definitions": vendored["definitions"]}
    return _errors(jsonschema.Draft7Validator(schema), doc)


def schema_errors(objects: list[dict[str, Any]]) -> list[str]:
    """Every schema error of the objects, as `Kind/name path: message`."""
    out = []
    for doc in objects:
        if (doc.get("apiVersion"), doc.get("kind")) in WORKFLOW_CRDS:
            errors = workflow_errors(doc)
        else:
            errors = events_errors(doc)
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        out += [f"{name} {e.path}: {e.message}" for e in errors]
    return out
