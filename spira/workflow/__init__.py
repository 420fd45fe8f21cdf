"""Continuous training in the clusters: the pipeline's stages as Argo Workflows objects (docs/workflows.md).

`render_workflow_objects(env, image)` (spira/workflow/render.py) is the one source of the rendered objects;
`spira workflow render ENV` prints them and `spira workflow play` runs the WorkflowTemplate's pod specs.
The training image carries this package for its `candidate` step (`spira workflow candidate`), without the
render's infra modules: the render is imported on first use, not with the package."""

from __future__ import annotations

from typing import Any

__all__ = ["render_workflow_objects"]


def __getattr__(name: str) -> Any:
    if name == "render_workflow_objects":
        from spira.workflow.render import render_workflow_objects

        return render_workflow_objects
    raise AttributeError(name)
