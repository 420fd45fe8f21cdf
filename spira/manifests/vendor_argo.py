"""Vendor the upstream schemas of the Argo Workflows and Argo Events kinds the training workflow renders.

    python -m spira.manifests.vendor_argo WORKFLOWS_REPO EVENTS_REPO

reads, at the tags of the releases the pinned charts install (infra/charts.yaml), Argo Workflows' full
CRDs (manifests/base/crds/full/, with their openAPIV3Schema) and Argo Events' JSON schema
(api/jsonschema/schema.json: its CRDs carry no schema) from local git clones, and writes excerpts into
spira/manifests/crds/: descriptions removed, `metadata` replaced by the x-spira-core ObjectMeta marker,
`status` and the template kinds SPIRA does not use marked x-spira-pruned (rejected until vendored). The
upstream text is data here, never code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

CRD_DIR = Path(__file__).resolve().parent / "crds"
# Argo Workflows release of the argo-workflows chart 1.0.18, Argo Events of the argo-events chart 2.4.22
WORKFLOWS_TAG = "v4.0.6"
EVENTS_TAG = "v1.9.10"
WORKFLOW_KINDS = {"WorkflowTemplate": "workflowtemplates", "CronWorkflow": "cronworkflows"}
EVENT_KINDS = ("EventBus", "EventSource", "Sensor")
UNUSED = "not used by SPIRA's training workflow"
# Workflow spec and template fields SPIRA does not render: pruned to keep the excerpt small.
PRUNED_SPEC = ("templateDefaults", "executorPlugins", "hooks", "volumeClaimTemplates", "artifactGC")
PRUNED_TEMPLATE = (
    "containerSet",
    "initContainers",
    "sidecars",
    "script",
    "resource",
    "data",
    "http",
    "plugin",
    "archiveLocation",
    "suspend",
)


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _prune(props: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if name in props:
            props[name] = {"x-spira-pruned": UNUSED}


def _git_show(repo: Path, tag: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{tag}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def _workflow_spec(spec: dict[str, Any]) -> None:
    _prune(spec["properties"], PRUNED_SPEC)
    _prune(spec["properties"]["templates"]["items"]["properties"], PRUNED_TEMPLATE)


def workflow_crd(repo: Path, kind: str) -> tuple[str, str]:
    plural = WORKFLOW_KINDS[kind]
    path = f"manifests/base/crds/full/argoproj.io_{plural}.yaml"
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", f"{WORKFLOWS_TAG}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    crd = _strip(yaml.safe_load(_git_show(repo, WORKFLOWS_TAG, path)))
    (version,) = crd["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    schema["properties"]["metadata"] = {"x-spira-core": "ObjectMeta"}
    if "status" in schema["properties"]:
        schema["properties"]["status"] = {"x-spira-pruned": "status is written by the controller"}
    spec = schema["properties"]["spec"]
    _workflow_spec(spec["properties"]["workflowSpec"] if kind == "CronWorkflow" else spec)
    out = {
        "apiVersion": crd["apiVersion"],
        "kind": crd["kind"],
        "metadata": {"name": crd["metadata"]["name"]},
        "spec": {
            "group": crd["spec"]["group"],
            "names": {"kind": kind, "plural": plural},
            "scope": crd["spec"]["scope"],
            "versions": [{"name": version["name"], "schema": {"openAPIV3Schema": schema}}],
        },
    }
    header = (
        f"# Excerpt of argoproj/argo-workflows {path}\n"
        f"# at tag {WORKFLOWS_TAG}, commit {commit}, the release of the argo-workflows chart pinned in\n"
        f"# infra/charts.yaml; written by `python -m spira.manifests.vendor_argo` (descriptions removed).\n"
        f"# Replaced: metadata (x-spira-core ObjectMeta); pruned: status, spec {', '.join(PRUNED_SPEC)},\n"
        f"# template {', '.join(PRUNED_TEMPLATE)}.\n"
    )
    return f"{plural[:-1]}.yaml", header + yaml.safe_dump(out, sort_keys=True, width=120)


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].split("/")[-1]} if "$ref" in node else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def events_schema(repo: Path) -> tuple[str, str]:
    """The definitions the three Argo Events kinds reach, with the kinds' roots under `kinds`."""
    path = "api/jsonschema/schema.json"
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", f"{EVENTS_TAG}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    definitions = _strip(json.loads(_git_show(repo, EVENTS_TAG, path))["definitions"])
    roots = {kind: f"io.argoproj.events.v1alpha1.{kind}" for kind in EVENT_KINDS}
    keep, todo = set(), list(roots.values())
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        todo.extend(_refs(definitions[name]) - keep)
    # an embedded object of any kind (the Sensor's Workflow): opaque upstream, kept open here
    definitions["io.argoproj.events.v1alpha1.K8SResource"]["x-kubernetes-preserve-unknown-fields"] = True
    out = {
        "source": f"argoproj/argo-events {path} at tag {EVENTS_TAG}, commit {commit} (descriptions removed)",
        "kinds": roots,
        "definitions": {name: definitions[name] for name in sorted(keep)},
    }
    return "argo-events.json", json.dumps(out, indent=1, sort_keys=True) + "\n"


def main(argv: list[str]) -> None:
    workflows, events = Path(argv[0]), Path(argv[1])
    for name, text in (*(workflow_crd(workflows, kind) for kind in WORKFLOW_KINDS), events_schema(events)):
        (CRD_DIR / name).write_text(text)
        print(f"{CRD_DIR / name}: {len(text)} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
