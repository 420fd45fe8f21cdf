"""Strict schema validation: core kinds with kubernetes-validate, Argo and KEDA kinds with the vendored CRD
schemas; Argo Events' kinds (whose CRDs carry no schema) with Argo Events' own JSON schema
(crds/argo-events.json), made strict the same way.

The API server prunes fields a structural CRD schema does not know, silently: `activeServce` would be
dropped and the Rollout would run without a preview Service. So every object of the vendored schemas that
the CRD does not mark `x-kubernetes-preserve-unknown-fields` gets `additionalProperties: false` here, and
an unknown field is an error. See crds/README.md for the two markers (`x-spira-core`, `x-spira-pruned`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

CRD_DIR = Path(__file__).resolve().parent / "crds"
# (apiVersion, kind) -> vendored CRD file
CRD_FILES: dict[tuple[str, str], str] = {
    ("argoproj.io/v1alpha1", "Rollout"): "rollout.yaml",
    ("argoproj.io/v1alpha1", "AnalysisTemplate"): "analysistemplate.yaml",
    ("argoproj.io/v1alpha1", "Application"): "application.yaml",
    ("argoproj.io/v1alpha1", "AppProject"): "appproject.yaml",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.yaml",
    # in-cluster TLS (argocd/base/model-certificate.yaml; the Pulumi program's issuer and certificates)
    ("cert-manager.io/v1", "Certificate"): "certificate.yaml",
    ("cert-manager.io/v1", "ClusterIssuer"): "clusterissuer.yaml",
    # continuous training (docs/workflows.md): excerpts written by `python -m spira.manifests.vendor_argo`
    ("argoproj.io/v1alpha1", "WorkflowTemplate"): "workflowtemplate.yaml",
    ("argoproj.io/v1alpha1", "CronWorkflow"): "cronworkflow.yaml",
}
# Argo Events' kinds: validated against its JSON schema (its CRDs have none).
EVENTS_SCHEMA = CRD_DIR / "argo-events.json"
EVENTS_KINDS = {("argoproj.io/v1alpha1", kind) for kind in ("EventBus", "EventSource", "Sensor")}
# API groups whose kinds exist only as CRDs: an object of one of them without a vendored schema is an error,
# never a core kind.
CRD_GROUPS = ("argoproj.io/", "keda.sh/", "cert-manager.io/")

# How a core type embedded in a CRD is validated: wrapped into the smallest core object that holds it.
_CORE_WRAPPERS = {
    "ObjectMeta": lambda value: ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": value}, 1),
    "PodSpec": lambda value: (
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t"}, "spec": value},
        1,
    ),
}


@dataclass(frozen=True)
class SchemaError:
    path: str
    message: str


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def strict(node: Any) -> Any:
    """The CRD schema with every closed object made explicit (additionalProperties: false)."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items()}
    if (
        out.get("type") == "object"
        and not out.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in out
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    # libyaml's loader when present: the Argo Workflows excerpts are large
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((CRD_DIR / CRD_FILES[(api_version, kind)]).read_text(), Loader=loader)
    version = api_version.split("/")[1]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return strict(copy.deepcopy(served["schema"]["openAPIV3Schema"]))


def core_errors(doc: dict[str, Any], kubernetes_version: str) -> list[SchemaError]:
    """kubernetes-validate in strict mode: unknown fields are errors, as with `kubectl --validate=strict`."""
    try:
        kubernetes_validate.validate(doc, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [SchemaError(_path(getattr(exc, "path", ())), _first_line(exc))]
    except kubernetes_validate.SchemaNotFoundError:
        return [
            SchemaError(
                "(document)",
                f"no schema for {doc.get('apiVersion')}/{doc.get('kind')} in Kubernetes {kubernetes_version}",
            )
        ]
    return []


def _first_line(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return message.splitlines()[0]


def _validator_class(kubernetes_version: str) -> type:
    def core(validator: Any, kind: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
        wrapped, depth = _CORE_WRAPPERS[kind](instance)
        try:
            kubernetes_validate.validate(wrapped, kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            inner = list(getattr(exc, "path", ()))[depth:]
            yield jsonschema.ValidationError(f"{kind}: {_first_line(exc)}", path=inner)

    def pruned(validator: Any, why: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
        yield jsonschema.ValidationError(
            f"this field exists in the CRD but its schema is not vendored ({why}); vendor it before using it"
        )

    return jsonschema.validators.extend(
        jsonschema.Draft7Validator, {"x-spira-core": core, "x-spira-pruned": pruned}
    )


def crd_errors(doc: dict[str, Any], kubernetes_version: str) -> list[SchemaError]:
    schema = crd_schema(doc["apiVersion"], doc["kind"])
    validator = _validator_class(kubernetes_version)(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [SchemaError(_path(e.absolute_path), e.message) for e in errors]


@cache
def _events() -> dict[str, Any]:
    vendored = json.loads(EVENTS_SCHEMA.read_text())
    return {"kinds": vendored["kinds"], "definitions": strict(vendored["definitions"])}


def events_errors(doc: dict[str, Any]) -> list[SchemaError]:
    vendored = _events()
    root = vendored["kinds"].get(doc.get("kind"))
    if root is None or doc.get("apiVersion") != "argoproj.io/v1alpha1":
        return [SchemaError("(document)", f"no vendored Argo Events schema for {doc.get('kind')}")]
    schema = {"$ref": f"#/definitions/{root}", "definitions": vendored["definitions"]}
    errors = jsonschema.Draft7Validator(schema).iter_errors(doc)
    return [
        SchemaError(_path(e.absolute_path), e.message)
        for e in sorted(errors, key=lambda e: list(map(str, e.absolute_path)))
    ]


def validate(doc: dict[str, Any], kubernetes_version: str) -> list[SchemaError]:
    """Schema errors of one object: CRD kinds against the vendored schemas, the rest as core kinds."""
    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        return [SchemaError("(document)", "not a Kubernetes object (apiVersion and kind are required)")]
    if (doc["apiVersion"], doc["kind"]) in CRD_FILES:
        return crd_errors(doc, kubernetes_version)
    if (doc["apiVersion"], doc["kind"]) in EVENTS_KINDS:
        return events_errors(doc)
    if doc["apiVersion"].startswith(CRD_GROUPS):
        return [SchemaError("(document)", f"no vendored CRD schema for {doc['apiVersion']}/{doc['kind']}")]
    return core_errors(doc, kubernetes_version)
