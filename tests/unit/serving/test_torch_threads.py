"""The serving processes set torch's intra-op threads themselves: torch's default counts the node's cores,
not the pod's CPU limit."""

from __future__ import annotations

import torch

from serving.wiring import torch_threads


def test_the_process_runs_torch_ops_in_the_threads_it_is_given_and_never_in_none() -> None:
    before = torch.get_num_threads()
    try:
        torch_threads(1)
        assert torch.get_num_threads() == 1
        torch_threads(0)
        assert torch.get_num_threads() == 1
        torch_threads(2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
