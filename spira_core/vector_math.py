"""MKL's vector math started once, in one thread, before torch computes in several.

torch's CPU kernels for exp, tanh, sigmoid and their kin call MKL's vector math library (VML), which sets
itself up on its first call. On the AVX-512 Xeon build host (torch 2.13.0+cpu, MKL statically linked), when
that first call came from two intra-op threads at once, one thread's half of the tensor came out 1e-5 to 5e-5
relative off (float32 resolves 6e-8): `x.exp()` on a [20, 32, 69, 40] tensor in a fresh process with
two threads was off on one half in 4 runs of 10, and a seeded two-epoch training run wrote 3 different
weight files in 16 runs. One serial call first, in any thread, and every later call was exact: 0 bad in 46
fresh processes, 20 of 20 byte-identical training runs (tests/unit/core/test_vector_math.py runs the
check in fresh processes).

Every entry point that lets torch use more than one intra-op thread calls `start_vector_math()` before its
first torch op: the training pipeline's wiring (training.wiring.build_pipeline) and every serving process
(server, queue worker, `spira predict`) where it builds its model (serving.inference.Predictor.from_bundle,
before the model's load-time checks).
"""

from __future__ import annotations

# more than a vector register of floats, fewer than torch's grain (32,768 elements): the op runs in the
# calling thread and through the vectorised path
_SERIAL_ELEMENTS = 1024


def start_vector_math() -> None:
    """One exp in the calling thread alone: MKL's vector math is set up before any parallel call."""
    import torch

    torch.ones(_SERIAL_ELEMENTS).exp()
