"""MKL's vector math started serially: torch's first exp in two intra-op threads is exact in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# Without the set-up, this very script was off on one half in 2–4 fresh processes of 10–20 on the AVX-512
# build host; twelve processes miss the fault with probability ≤ 0.85^12 ≈ 14% there, and every run of the
# suite tries again. (A host without the fault passes with or without the set-up.)
PROCESSES = 12

_FIRST_CALL = """
import json, sys
import torch
from spira_core.vector_math import start_vector_math
start_vector_math()
torch.set_num_threads(2)
torch.manual_seed(0)
h = torch.randn(20, 32, 69, 40)
first = h.exp()  # the first call that spans both threads: each takes one half of the tensor
exact = h.double().exp()
relative = ((first.double() - exact).abs() / exact).reshape(2, -1).amax(dim=1)
print(json.dumps(relative.tolist()))
"""


def test_a_fresh_process_computes_its_first_two_thread_exp_exactly_on_both_halves_of_the_tensor() -> None:
    for _ in range(PROCESSES):
        out = subprocess.run(
            [sys.executable, "-c", _FIRST_CALL],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        halves = json.loads(out.stdout)
        assert max(halves) < 1e-6, f"relative error per half of the tensor: {halves}"
