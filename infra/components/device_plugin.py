"""NVIDIA device plugin: advertises `nvidia.com/gpu` on the GPU pool's nodes, and only there."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra import contracts
from infra.components.helm import pinned_release

NAMESPACE = "nvidia-device-plugin"


@dataclass(frozen=True)
class DevicePluginArgs:
    # The GPU node pool: the DaemonSet is installed once the pool exists.
    gpu_pool: pulumi.Resource


class DevicePlugin(pulumi.ComponentResource):
    def __init__(self, name: str, args: DevicePluginArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:platform:DevicePlugin", name, None, opts)
        contract = contracts.gpu_pool()
        values = {
            # Scheduled on the GPU pool by the same label and taint the model's pods use.
            "nodeSelector": contract.node_selector,
            "tolerations": [contract.toleration],
            "gfd": {"enabled": False},
        }
        self.release = pinned_release(
            name,
            "nvidia-device-plugin",
            NAMESPACE,
            values,
            pulumi.ResourceOptions(parent=self, depends_on=[args.gpu_pool]),
        )
        self.register_outputs({"release": self.release.name})
