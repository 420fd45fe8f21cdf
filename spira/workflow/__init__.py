"""Continuous training in the clusters: the pipeline's stages as Argo Workflows objects (docs/workflows.md).

`render_workflow_objects(env, image)` (spira/workflow/render.py) is the one source of the rendered objects;
`spira workflow render ENV` prints them and `spira workflow play` runs the WorkflowTemplate's pod specs."""

from spira.workflow.render import render_workflow_objects

__all__ = ["render_workflow_objects"]
