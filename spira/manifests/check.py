"""`spira manifests check`: every check over every environment, as one list of findings.

Order: generated patches, render, schemas, semantics, referential integrity (clusters), Argo CD bootstrap,
drift guard, golden files, checkov. A render failure
stops that environment's later checks (there is nothing to check), not the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import combinations

from infra.environments import declared
from spira.manifests import (
    bootstrap,
    contracts,
    drift,
    generate,
    integrity,
    network_policies,
    queue_checks,
    queue_patches,
    render,
    schemas,
    semantic,
    training,
)
from spira.manifests.checkov_scan import Checkov, CheckovCli, as_core_workloads
from spira.manifests.semantic import Doc, Finding

GENERATED_STALE = (
    "differs from what infra/environments.yaml and the stacks generate; run `spira manifests golden`"
)


def schema_findings(docs: Iterable[Doc], where: str, version: str) -> list[Finding]:
    return [
        Finding("schema", f"{where} {semantic.ref(doc)} {err.path}", err.message)
        for doc in docs
        for err in schemas.validate(doc, version)
    ]


def rendered_findings(env: str, docs: list[Doc], version: str) -> list[Finding]:
    """Schemas and semantics of one rendered environment."""
    out = schema_findings(docs, env, version)
    out += semantic.all_rendered(docs, contracts.gpu_pool(), contracts.vault(env))
    out += semantic.gate_thresholds(docs, env)
    out += queue_checks.all_queue(docs, queue_patches.queue_expectation())
    if env in render.CLUSTER_ENVIRONMENTS:
        replicas, gpus = contracts.stack_sizes(env)
        out += semantic.stack_sizes(docs, contracts.gpu_pool(), replicas, gpus)
    return [Finding(f.check, f"{env}: {f.where}", f.message) for f in out]


def bootstrap_findings(rendered: dict[str, list[Doc]], version: str) -> list[Finding]:
    project, template = contracts.bootstrap_templates()
    out = schema_findings([project, template], "bootstrap", version)
    table = contracts.environments()
    for env, entry in table.items():
        # Each cluster of infra/environments.yaml is a Pulumi stack and an overlay; a cluster missing one
        # would have a root Application and nothing to create or sync.
        for needed in (f"Pulumi.{env}.yaml", f"{entry['overlay']}/kustomization.yaml"):
            if not (render.REPO_ROOT / needed).is_file():
                out.append(Finding("argocd", f"infra/environments.yaml {env}", f"{needed} does not exist"))
        if env not in rendered:
            continue
        app = bootstrap.root_application(
            template, env, entry["branch"], entry["overlay"], contracts.repo_url()
        )
        out += schema_findings([app], f"bootstrap {env}", version)
        out += bootstrap.check(project, app, rendered[env], env)
    return out


def integrity_findings(rendered: dict[str, list[Doc]]) -> list[Finding]:
    """Every cross-layer reference of each cluster resolves to what that cluster creates."""
    return [
        finding
        for env in declared().clusters
        if env in rendered
        for finding in integrity.check(
            integrity.live_inputs(env, rendered[env], render.REPO_ROOT), declared()
        )
    ]


def drift_findings(rendered: dict[str, list[Doc]]) -> list[Finding]:
    allow = contracts.allowlist()
    out = []
    for left, right in combinations(sorted(rendered), 2):
        for diff in drift.drift(rendered[left], rendered[right], allow):
            out.append(Finding("drift", f"{left} vs {right}", f"{diff} (not in argocd/allowlist.yaml)"))
    return out


def golden_findings(texts: dict[str, str]) -> list[Finding]:
    out = []
    for env, text in texts.items():
        path = render.golden_path(env)
        expected = render.GOLDEN_HEADER.format(
            source=render.environment_dir(env).relative_to(render.REPO_ROOT)
        )
        if not path.is_file() or path.read_text() != expected + text:
            out.append(
                Finding(
                    "golden",
                    str(path.relative_to(render.REPO_ROOT)),
                    "differs from the render; review the change, then `spira manifests golden`",
                )
            )
    return out


def checkov_findings(rendered: dict[str, list[Doc]], scanner: Checkov) -> list[Finding]:
    return [
        Finding("checkov", f"{env}: {failure.resource}", f"{failure.check_id} {failure.name}")
        for env, docs in rendered.items()
        for failure in scanner.scan(as_core_workloads(docs))
    ]


def run(
    envs: Iterable[str] = tuple(render.ENVIRONMENTS),
    scanner: Checkov | None = None,
    renderer: Callable[[str], str] = render.render,
) -> list[Finding]:
    """All findings; empty means the manifests pass. `renderer` is swappable for tests of the pipeline."""
    version = contracts.kubernetes_version()
    texts: dict[str, str] = {}
    rendered: dict[str, list[Doc]] = {}
    out: list[Finding] = [
        Finding("generated", str(path.relative_to(render.REPO_ROOT)), GENERATED_STALE)
        for path in [
            *generate.stale(),
            *queue_patches.stale(),
            *network_policies.stale(),
            *training.stale(),
        ]
    ]
    out += [Finding("generated", "training patches", message) for message in training.unreferenced()]
    for env in envs:
        try:
            texts[env] = renderer(env)
        except render.RenderError as exc:
            out.append(Finding("render", env, str(exc)))
            continue
        rendered[env] = render.parse(texts[env])
        out += rendered_findings(env, rendered[env], version)
    out += semantic.kustomization_images(contracts.base_kustomization())
    out += integrity_findings(rendered)
    out += bootstrap_findings(rendered, version)
    out += drift_findings(rendered)
    out += golden_findings(texts)
    out += checkov_findings(rendered, scanner or CheckovCli())
    return out
