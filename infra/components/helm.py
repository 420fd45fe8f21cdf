"""Helm releases installed from the pins in infra/charts.yaml, never from a floating version."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra import contracts


def pinned_release(
    name: str,
    chart_name: str,
    namespace: str,
    values: Any,
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release:
    """A Helm release of a chart at the version pinned in infra/charts.yaml, in its own namespace."""
    pin = contracts.chart(chart_name)
    return k8s.helm.v3.Release(
        name,
        name=name,
        chart=pin.chart,
        version=pin.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=pin.repo),
        namespace=namespace,
        create_namespace=True,
        # atomic: a failed upgrade rolls back instead of leaving a half-applied release behind
        atomic=True,
        values=values,
        opts=opts,
    )
