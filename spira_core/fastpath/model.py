"""SpiraConvV2's eval-mode forward pass rewritten for one CPU core, from the same trained weights.

    fast = FastSpiraConvV2.from_module(bundle.model)      # or FastWindowModel.from_bundle(bundle)
    probs = fast.predict(windows)                         # [N, T, F] float32 -> float64 [N]

The same function as `spira_core.model.SpiraConvV2` in eval mode (dropout is the identity); only the order
of float32 operations differs, so parity is checked to 1e-5 rather than bit for bit. Eager time goes to
MaxPool (~45%), the scalar Mish kernel (~30%), oneDNN's convolutions and GroupNorm's Welford pass, all on
32×389×40 values per window. What this does instead:

- Convolutions of width 1 along frequency are sums over taps of [C_out, C_in] matrix products. Activations
  are laid out [C, T, B, F] (channel, time, window, frequency), so a tap's time shift is a column offset of
  one 2-D matrix: every tap is a single BLAS call for the whole batch, reading a strided view in place.
- Block 1 (one input channel, 7 taps) gets its GroupNorm statistics without materialising the conv output
  twice: the output is linear in the 7 shifted input rows, so its per-channel mean and variance follow from
  the rows' 8×8 Gram matrix (computed in float64). The normalisation is then folded into the conv's weights
  and bias, and conv, Mish and MaxPool run per window (in time segments if `segment` is set below the
  window's length; one segment per window measured fastest, the saved calls outweighing the L2 fit).
- Mish: tanh(softplus(z)) = 1 - 2 / ((1 + e^z)^2 + 1) = 1 - 1 / (1 + e^z + e^2z / 2), so mish(z) =
  z - z / d: exp2 and three vectorised passes instead of the scalar tanh/log1p kernel. torch's exp2 is
  ~2x faster than exp here, so each block computes z' = z·log2(e) (folded into the GroupNorm affine),
  e^z = 2^z', and hands on log2(e)·mish(z); the next block's weights (and fc1's) carry the compensating
  ln 2. For z' above ~64, e²/2 is inf, d is inf, and the result is z' exactly, which is mish's limit.
- MaxPool over time pairs is one `maximum` of two strided views, written straight into the next block's
  input; the odd last frame it drops still counts in GroupNorm's statistics, as in the eager module.
- Scratch buffers are reused between calls (a small pool, one per concurrent caller): fresh multi-megabyte
  tensors each cost page faults. Batches are cut into chunks so the working set stays in cache.
- fc1's columns are permuted once so [C, T', F] activations flatten directly into SPIRA's [T', C, F] order.
  The head runs once per call over the whole batch (fc1's 2.75 MB of weights stream once, not per chunk).

Where numba imports (it is in the base dependencies), the elementwise work runs in the fused kernels of
`spira_core.fastpath.kernels` (issue 21), `fused=False` keeps the torch passes below (the side-by-side
benchmark and hosts without numba): block 1's statistics, conv, Mish and pool in one compiled pass per L1
tile (only the pooled values are written), and each later block's GroupNorm statistics, conv bias, affine,
Mish and pool in two passes over its tap GEMMs' output instead of ~12 torch calls. The GEMMs stay BLAS.
The fused path works on numpy arrays (torch only for the BLAS calls), one window at a time through the conv
stack (`DEFAULT_FUSED_CHUNK`), from a plan made once per workspace and chunk size (every buffer, GEMM view
and kernel argument list: a call is the kernels and the GEMMs, no slicing or allocation), then fc1 once over
the batch and Mish, fc2 and the sigmoid in one kernel.
"""

from __future__ import annotations

import functools
import math
import operator
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as TF
from torch import nn

LOG2E = 1.0 / math.log(2.0)
LN2 = math.log(2.0)
DEFAULT_CHUNK = 8  # windows per pass through the conv stack (the torch passes)
# the fused kernels' windows per pass: one. Each window's block 1 output (1 MB) and block 2 GEMMs then stay
# in L2/L3 and every kernel reads one window's channel as one run; against chunks of 2/4/8, 6–11% less per
# window at batch 2, 8 and 64 (alternated calls, EPYC, 2026-12-07). fc1 still runs once over the batch.
DEFAULT_FUSED_CHUNK = 1
DEFAULT_SEGMENT = (
    97  # block 1's pooled frames per segment: a whole 4 s window (1 MB); fewer calls beat L2 fit (measured)
)
# later blocks' output columns per GEMM block (16 × 16384 × 4 B = 1 MB): against 4096, 0.1–0.4 ms less per
# call at batch 1–8 in per-call alternated runs (fewer, larger GEMMs; EPYC, MKL); same sums in the same order
DEFAULT_GEMM_COLUMNS = 16384


class UnsupportedModuleError(ValueError):
    """The module computes something the fast path does not reproduce; raised at build time, never later.

    `layer` names the first layer (or operation) of its forward pass that the rewrite does not know, as the
    module names it ("conv.2", "fc1", "transpose"); None when the module as a whole does not fit."""

    def __init__(self, message: str, layer: str | None = None) -> None:
        super().__init__(message)
        self.layer = layer


@dataclass(frozen=True)
class _Block:
    """Conv2d((k, 1), dilation (d, 1)) → GroupNorm → Mish → [MaxPool (2, 1)], in matmul form."""

    taps: torch.Tensor  # [k, C_out, C_in] float32, times the input's scale (ln 2 after a previous block)
    bias: torch.Tensor  # [C_out, 1] float32
    weight64: np.ndarray  # [C_out, C_in·k] float64, unscaled (block 1's analytic statistics)
    bias64: np.ndarray  # [C_out] float64
    dilation: int
    groups: int
    eps: float
    gamma: torch.Tensor  # [C_out] float32
    beta: torch.Tensor  # [C_out] float32
    pool: bool

    @property
    def c_out(self) -> int:
        return int(self.taps.shape[1])

    @property
    def c_in(self) -> int:
        return int(self.taps.shape[2])

    @property
    def kernel(self) -> int:
        return int(self.taps.shape[0])

    def conv_frames(self, frames: int) -> int:
        return frames - self.dilation * (self.kernel - 1)

    def next_frames(self, frames: int) -> int:
        conv = self.conv_frames(frames)
        return conv // 2 if self.pool else conv


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


@dataclass(frozen=True)
class _Layer:
    """One step of the module's traced forward pass: a submodule call or a tensor operation."""

    name: str  # the submodule's qualified name ("conv.2"), or the operation's ("transpose")
    what: str  # the submodule's class, or the operation
    args: tuple  # the traced arguments after the input
    module: nn.Module | None = None

    def refuse(self, expected: str) -> UnsupportedModuleError:
        return UnsupportedModuleError(
            f"layer '{self.name}' ({self.what}) is not supported by the fast path: expected {expected}",
            layer=self.name,
        )


_IDENTITY_IN_EVAL = (nn.Dropout, nn.Identity)


def _op_name(node) -> str:
    """ "sub" for operator.sub and torch.sub alike, "sigmoid" for torch.sigmoid and Tensor.sigmoid."""
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _reads_shape(node) -> bool:
    """`x.size(...)`, `x.shape` and `x.shape[i]`: shapes read for a view, not values computed."""
    if node.op == "call_method" and node.target == "size":
        return True
    if node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",):
        return True
    return node.op == "call_function" and node.target is operator.getitem and _reads_shape(node.args[0])


def _trace(model: nn.Module) -> tuple[list[_Layer], dict[str, torch.Tensor]]:
    """The forward pass as one chain of layers (each consumes the previous one's output), and the module's
    tensors that operations read (the input standardisation buffers)."""
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as exc:  # data-dependent control flow, untraceable calls: nothing to derive from
        raise UnsupportedModuleError(
            f"{type(model).__name__}'s forward cannot be traced into layers: {type(exc).__name__}: {exc}"
        ) from exc
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise UnsupportedModuleError(f"{type(model).__name__}.forward takes {len(inputs)} inputs, not one")
    tensors: dict[str, torch.Tensor] = {}
    layers: list[_Layer] = []
    previous = inputs[0]
    for node in graph.nodes:
        if node.op == "get_attr":
            tensors[node.name] = functools.reduce(getattr, node.target.split("."), model)
            continue
        if node.op in ("placeholder", "output") or _reads_shape(node):
            continue  # shapes are read, not computed
        if node.op == "call_module":
            module = model.get_submodule(node.target)
            layer = _Layer(node.target, type(module).__name__, tuple(node.args[1:]), module)
        else:
            layer = _Layer(node.name, _op_name(node), tuple(node.args[1:]))
        consumers = [u for u in previous.users if not _reads_shape(u)]
        if not node.args or node.args[0] is not previous or consumers != [node]:
            raise layer.refuse("one chain of layers, each taking the previous one's output alone")
        layers.append(layer)
        previous = node
    return layers, tensors


class _Layers:
    """A cursor over the traced chain."""

    def __init__(self, layers: list[_Layer]) -> None:
        self.layers, self.i = layers, 0

    def peek(self) -> _Layer | None:
        return self.layers[self.i] if self.i < len(self.layers) else None

    def take(self, *kinds) -> _Layer | None:
        """The next layer if it is one of `kinds` (module classes or operation names), else None."""
        layer = self.peek()
        if layer is None:
            return None
        # a module's exact class: a subclass may compute something else in its own forward
        matches = any(
            (layer.module is not None and type(layer.module) is kind)
            or (layer.module is None and layer.what == kind)
            for kind in kinds
        )
        if matches:
            self.i += 1
            return layer
        return None

    def expect(self, expected: str, *kinds) -> _Layer:
        layer = self.take(*kinds)
        if layer is None:
            nxt = self.peek()
            if nxt is None:
                raise UnsupportedModuleError(f"the forward pass ends where the fast path expects {expected}")
            raise nxt.refuse(expected)
        return layer

    def skip_identities(self) -> None:
        while self.take(*_IDENTITY_IN_EVAL) is not None:
            pass


def _input_affine(
    layers: _Layers, tensors: dict[str, torch.Tensor], n_features: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(x − mean) · scale from per-coefficient tensors, as SpiraConvV2's standardisation buffers; None when
    it is the identity or absent."""
    mean = torch.zeros(n_features)
    scale = torch.ones(n_features)
    for op, target in (("sub", mean), ("mul", scale)):
        layer = layers.take(op)
        if layer is None:
            continue
        value = tensors.get(getattr(layer.args[0], "name", None)) if len(layer.args) == 1 else None
        if value is None or tuple(value.shape) != (n_features,):
            raise layer.refuse(f"a {op} by a tensor of the module of shape [{n_features}]")
        target.copy_(value.detach().to(torch.float32))
    if not bool(mean.any()) and bool((scale == 1).all()):
        return None
    return mean, scale


def _block(layers: _Layers, first: bool) -> _Block:
    """Conv2d((k, 1)) → GroupNorm → Mish → [MaxPool2d((2, 1))], dropouts anywhere between (eval: identity)."""
    conv = layers.take(nn.Conv2d)
    assert conv is not None
    c: nn.Conv2d = conv.module
    if (c.kernel_size[1], c.stride, _pair(c.padding), c.dilation[1], c.groups, c.padding_mode) != (
        1,
        (1, 1),
        (0, 0),
        1,
        1,
        "zeros",
    ):
        raise conv.refuse("a (k, 1) convolution without stride, padding or groups")
    if first and c.in_channels != 1:
        raise conv.refuse("one input channel in the first convolution (the window)")
    layers.skip_identities()
    norm = layers.expect("GroupNorm after a convolution", nn.GroupNorm)
    gn: nn.GroupNorm = norm.module
    if not gn.affine or gn.num_channels != c.out_channels:
        raise norm.refuse(f"GroupNorm with affine parameters over the {c.out_channels} channels")
    layers.skip_identities()
    layers.expect("Mish after GroupNorm", nn.Mish)
    layers.skip_identities()
    pool = layers.take(nn.MaxPool2d)
    if pool is not None:
        mp: nn.MaxPool2d = pool.module
        shape = (
            _pair(mp.kernel_size),
            _pair(mp.stride),
            _pair(mp.padding),
            _pair(mp.dilation),
            mp.ceil_mode,
            mp.return_indices,
        )
        if shape != ((2, 1), (2, 1), (0, 0), (1, 1), False, False):
            raise pool.refuse("MaxPool2d((2, 1))")
        layers.skip_identities()
    w = c.weight.detach().to(torch.float64)[..., 0]  # [C_out, C_in, k]
    b = (
        c.bias.detach().to(torch.float64)
        if c.bias is not None
        else torch.zeros(w.shape[0], dtype=torch.float64)
    )
    in_scale = 1.0 if first else LN2  # a previous block hands on log2(e)·mish
    return _Block(
        taps=(w * in_scale).permute(2, 0, 1).to(torch.float32).contiguous(),
        bias=b.to(torch.float32).reshape(-1, 1).contiguous(),
        weight64=w.reshape(w.shape[0], -1).numpy().copy(),
        bias64=b.numpy().copy(),
        dilation=int(c.dilation[0]),
        groups=int(gn.num_groups),
        eps=float(gn.eps),
        gamma=gn.weight.detach().to(torch.float32).clone(),
        beta=gn.bias.detach().to(torch.float32).clone(),
        pool=pool is not None,
    )


def _flatten(layers: _Layers) -> bool:
    """[B, C, T', F] → [B, C·T'·F]; True when the module flattens in [T', C, F] order (SpiraConvV2's)."""
    transposed = layers.take("transpose")
    if transposed is not None and tuple(transposed.args) not in ((1, 2), (2, 1)):
        raise transposed.refuse("transpose(1, 2): channels and time swapped before the flatten")
    layers.take("contiguous")
    flat = layers.expect(
        "a flatten of each window's features (view, reshape or flatten)", "view", "reshape", "flatten"
    )
    if flat.what == "flatten" and tuple(flat.args) not in ((1,), (1, -1)):
        raise flat.refuse("flatten(1)")
    if flat.what in ("view", "reshape") and (len(flat.args) != 2 or flat.args[1] != -1):
        raise flat.refuse(f"{flat.what}(batch, -1)")
    return transposed is not None


def _head(layers: _Layers) -> list[nn.Linear]:
    """Linear (→ Mish → Linear)* → sigmoid, dropouts anywhere (eval: identity); one output per window."""
    linears = [layers.expect("a Linear layer after the flatten", nn.Linear).module]
    layers.skip_identities()
    while layers.take(nn.Mish, "mish") is not None:
        layers.skip_identities()
        linears.append(layers.expect("a Linear layer after Mish", nn.Linear).module)
        layers.skip_identities()
    layers.expect("Mish or sigmoid after a Linear layer", "sigmoid")
    if layers.peek() is not None:
        raise layers.peek().refuse("nothing after the final sigmoid")
    if linears[-1].out_features != 1:
        raise UnsupportedModuleError(
            f"the last Linear layer gives {linears[-1].out_features} outputs, the fast path one", layer=None
        )
    return linears


def _mish2_(z: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
    """In place: z holds z' = z·log2(e); becomes log2(e)·mish(z) = z' - z' / (1 + e + e²/2), e = 2^z'
    (the same as z' - 2z' / ((1 + e)² + 1); four passes over the values instead of five)."""
    torch.exp2(z, out=tmp)
    tmp.addcmul_(tmp, tmp, value=0.5).add_(1.0)
    return z.addcdiv_(z, tmp, value=-1.0)


def _fused_kernels():
    """spira_core.fastpath.kernels, or None where numba does not import (the torch passes run instead)."""
    try:
        from spira_core.fastpath import kernels
    except ImportError:
        return None
    return kernels


class _Workspace:
    """Scratch tensors by name and size, reused between calls by one caller at a time; and the fused path's
    plans per chunk size (views of those tensors), dropped whenever a tensor grows."""

    def __init__(self) -> None:
        self._bufs: dict[str, torch.Tensor] = {}
        self.plans: dict[int, _Plan] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        n = math.prod(shape)
        buf = self._bufs.get(name)
        if buf is None or buf.numel() < n:
            buf = self._bufs[name] = torch.empty(n, dtype=torch.float32)
            self.plans.clear()  # their views of the old tensor would no longer be shared
        return buf[:n].view(shape)


@dataclass
class _Plan:
    """The fused path for one chunk size, made once per workspace: every buffer, view and argument list, so a
    call is the kernels and the GEMMs with no shape arithmetic, slicing or allocation (each costs a few µs in
    Python, ~0.1 ms a call at batch 1 before)."""

    batch: int
    weight: np.ndarray  # [B, C, k] block 1's per-window weights and bias (GroupNorm folded in)
    bias: np.ndarray  # [B, C]
    first: np.ndarray  # [C, T', B, F] block 1's output
    # per later block: its tap GEMMs as (out view, tap weights, input view, first tap), and the kernel's args
    later: list[tuple[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]], tuple]]
    last: torch.Tensor  # [C, T', B, F] the last block's output
    hidden: torch.Tensor | None  # one window: fc1's output [1, H] (its input is `last`, already flat)


class FastSpiraConvV2:
    """SpiraConvV2's eval-mode function on float32 CPU tensors; built from a trained module's weights."""

    def __init__(
        self,
        blocks: list[_Block],
        input_frames: int,
        n_features: int,
        head: list[nn.Linear],
        flatten_time_first: bool = True,
        input_affine: tuple[torch.Tensor, torch.Tensor] | None = None,
        chunk: int | None = None,
        segment: int = DEFAULT_SEGMENT,
        gemm_columns: int = DEFAULT_GEMM_COLUMNS,
        fused: bool | None = None,
    ) -> None:
        # the fused kernels when numba imports (unless fused=False); else the torch passes
        self.kernels = _fused_kernels() if fused is None or fused else None
        if fused and self.kernels is None:
            raise RuntimeError("fused kernels requested, but numba does not import")
        if chunk is None:
            chunk = DEFAULT_FUSED_CHUNK if self.kernels is not None else DEFAULT_CHUNK
        if chunk < 1 or segment < 1:
            raise ValueError("chunk and segment must be at least 1")
        if not blocks:
            raise UnsupportedModuleError("no convolution block before the flatten")
        self.blocks = blocks
        self.input_frames = int(input_frames)
        self.n_features = int(n_features)
        self.chunk = int(chunk)
        self.segment = int(segment)
        self.gemm_columns = int(gemm_columns)
        frames = self.input_frames
        for blk in blocks:
            if blk.conv_frames(frames) < 1:
                raise UnsupportedModuleError(f"input of {input_frames} frames is too short for this network")
            frames = blk.next_frames(frames)
        if frames < 1:
            raise UnsupportedModuleError(f"input of {input_frames} frames is too short for this network")
        self.out_frames = frames
        c_last = blocks[-1].c_out
        w1 = head[0].weight.detach().to(torch.float64)
        if w1.shape[1] != frames * c_last * n_features:
            raise UnsupportedModuleError(
                f"the first Linear layer takes {w1.shape[1]} inputs, the conv stack gives"
                f" {frames * c_last * n_features}"
            )
        if flatten_time_first:  # the module flattens [T', C, F]; ours flatten [C, T', F]
            w1 = w1.reshape(-1, frames, c_last, n_features).permute(0, 2, 1, 3).reshape(w1.shape[0], -1)
        # (weight transposed [in, out], bias) per Linear layer; Mish between them, sigmoid after the last.
        # The last block hands on log2(e)·mish, so the first layer's weights carry ln 2.
        self.head = [
            (
                (w1 * LN2 if i == 0 else layer.weight.detach().to(torch.float64))
                .t()
                .to(torch.float32)
                .contiguous(),
                (layer.bias.detach() if layer.bias is not None else torch.zeros(layer.out_features))
                .to(torch.float32)
                .clone(),
            )
            for i, layer in enumerate(head)
        ]
        # the module's fixed input affine, (x − mean) · scale; None when it is the identity
        self.input_affine = input_affine
        first_block = blocks[0]
        # block 1's moments as differences of prefix sums: entry (i, j) sums prefix row `lags` (the lagged
        # products q_|i-j|; row k: plain frame sums, for the means) from frame `first` over t_conv frames
        taps, idx = first_block.kernel, np.arange(first_block.kernel + 1)
        lags = np.abs(idx[:, None] - idx[None, :])
        lags[taps, :] = lags[:, taps] = taps
        first = first_block.dilation * np.minimum(idx[:, None], idx[None, :])
        first[taps, taps] = 0  # unused corner; keep its index in range
        self._gram_index = (lags, first)
        g, per = first_block.groups, first_block.c_out // first_block.groups
        self._gamma64 = first_block.gamma.double().numpy().reshape(g, per)
        self._beta64 = first_block.beta.double().numpy()
        self._lock = threading.Lock()
        self._free: list[_Workspace] = []
        self._fused_affine = [
            (
                (blk.gamma.double() * LOG2E).to(torch.float32).numpy(),
                (blk.beta.double() * LOG2E).to(torch.float32).numpy(),
            )
            for blk in blocks
        ]
        self._fused_bias = [blk.bias.reshape(-1).numpy().copy() for blk in blocks]  # added by the kernel
        self._gamma_flat = np.ascontiguousarray(self._gamma64.reshape(-1))
        # fc1's weight as [out, in] for the fused path: MKL's GEMV over it is ~35% faster at one window (54
        # against 84 µs) and x·Wᵀ from it ~25% at two than over the [in, out] copy; the same at 8 and 64
        self._fc1_weight = self.head[0][0].t().contiguous()
        # fc2 as a float64 vector and bias where the head is Linear → Mish → Linear(1): one kernel after fc1
        self._tail = None
        if len(self.head) == 2:
            w2, b2 = self.head[1]
            self._tail = (w2.double().reshape(-1).numpy().copy(), float(b2.reshape(-1)[0]))

    @classmethod
    def from_module(
        cls,
        model: nn.Module,
        chunk: int | None = None,
        segment: int = DEFAULT_SEGMENT,
        gemm_columns: int = DEFAULT_GEMM_COLUMNS,
        fused: bool | None = None,
    ) -> FastSpiraConvV2:
        """Derive the rewrite from a module's forward pass, layer by layer (train or eval mode; the copy always
        computes eval mode): input standardisation, Conv2d → GroupNorm → Mish → [MaxPool2d] blocks, flatten,
        Linear → Mish → ... → Linear → sigmoid, dropouts anywhere. Raises UnsupportedModuleError naming the
        first layer it does not reproduce. The window's shape comes from `input_frames` and `n_features`."""
        for name in ("input_frames", "n_features"):
            if not hasattr(model, name):
                raise UnsupportedModuleError(
                    f"not a SpiraConvV2-like module: no attribute {name!r} (the window shape)"
                )
        chain, tensors = _trace(model)
        layers = _Layers(chain)
        affine = _input_affine(layers, tensors, int(model.n_features))
        channel = layers.expect("unsqueeze(1): the window as one input channel", "unsqueeze")
        if tuple(channel.args) != (1,):
            raise channel.refuse("unsqueeze(1)")
        blocks: list[_Block] = []
        while layers.peek() is not None and type(layers.peek().module) is nn.Conv2d:
            blocks.append(_block(layers, first=not blocks))
        time_first = _flatten(layers)
        head = _head(layers)
        return cls(
            blocks,
            model.input_frames,
            model.n_features,
            head,
            time_first,
            affine,
            chunk,
            segment,
            gemm_columns,
            fused,
        )

    @property
    def fused(self) -> bool:
        """True when the elementwise work runs in the fused numba kernels."""
        return self.kernels is not None

    @contextmanager
    def _workspace(self) -> Iterator[_Workspace]:
        with self._lock:
            ws = self._free.pop() if self._free else _Workspace()
        try:
            yield ws
        finally:
            with self._lock:
                self._free.append(ws)

    # -- block 1: analytic GroupNorm statistics, folded into the conv --------------------------------
    def _first_block_affine(self, x: torch.Tensor, blk: _Block) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, F] → per-window weights [B, C, k] and bias [B, C, 1] whose conv output is log2(e) × the
        GroupNorm output.

        The conv output of channel c at (t, f) is w_c · u(t, f) + b_c with u(t, f) = (x[t + d·j, f])_j, so
        its mean and variance over (t, f) need only the k row sums Σ u_j and the k×k Gram matrix Σ u_i u_j.
        Both come from lagged frame products q_l[t] = Σ_f x[t, f]·x[t + d·l, f] and prefix sums over t, in
        float64: the variance is a difference of large sums when the taps are correlated (they are shifts of
        one smooth signal), which float32 would not resolve.
        """
        batch, frames, f = x.shape
        k, d = blk.kernel, blk.dilation
        t_conv = blk.conv_frames(frames)
        xd = np.zeros((batch, frames + d * (k - 1), f))
        xd[:, :frames] = x.numpy()
        q = np.zeros((batch, k + 1, frames + 1))  # rows 0..k-1: q_l; row k: frame sums; column 0 stays 0
        for lag in range(k):
            np.einsum("btf,btf->bt", xd[:, :frames], xd[:, d * lag : d * lag + frames], out=q[:, lag, 1:])
        np.sum(xd[:, :frames], axis=2, out=q[:, k, 1:])
        prefix = np.cumsum(q, axis=2)
        lags, first = self._gram_index  # [k+1, k+1] each: which prefix row, and the first frame summed
        moments = (prefix[:, lags, first + t_conv] - prefix[:, lags, first]) / float(t_conv * f)
        mu = moments[:, k, :k]  # [B, k]: E[u_j]
        cov = moments[:, :k, :k] - mu[:, :, None] * mu[:, None, :]  # [B, k, k]
        w, b = blk.weight64, blk.bias64  # [C, k], [C]
        mean_c = mu @ w.T + b  # [B, C]
        var_c = ((cov @ w.T) * w.T).sum(axis=1)  # [B, C]: w_c · cov · w_c
        g, per = blk.groups, blk.c_out // blk.groups
        mean_g = mean_c.reshape(batch, g, per).mean(axis=2, keepdims=True)  # [B, G, 1]
        var_g = (var_c.reshape(batch, g, per) + (mean_c.reshape(batch, g, per) - mean_g) ** 2).mean(
            axis=2, keepdims=True
        )
        scale = (self._gamma64 * (1.0 / np.sqrt(var_g + blk.eps))).reshape(batch, -1)  # [B, C]
        shift = self._beta64 - (mean_g * scale.reshape(batch, g, per)).reshape(batch, -1)
        weight = (LOG2E * scale)[:, :, None] * w[None]
        bias = LOG2E * (scale * b + shift)
        return torch.from_numpy(weight.astype(np.float32)), torch.from_numpy(
            bias.astype(np.float32)[:, :, None]
        )

    def _first_block(self, x: torch.Tensor, blk: _Block, ws: _Workspace) -> tuple[torch.Tensor, int]:
        """x [B, T, F] → log2(e)·(pooled) block output [C, T', B, F]."""
        batch, frames, f = x.shape
        k, shift = blk.kernel, blk.dilation * f
        t_conv = blk.conv_frames(frames)
        t_out = t_conv // 2 if blk.pool else t_conv
        p = t_conv * f
        cols = ws.get("cols", (batch, k, p))
        cols.copy_(torch.as_strided(x, (batch, k, p), (x.stride(0), shift, 1)))
        weight, bias = self._first_block_affine(x, blk)
        step = 2 if blk.pool else 1
        h = ws.get("h0", (blk.c_out, t_out, batch, f))
        seg = self.segment
        for i in range(batch):
            for t0 in range(0, t_out, seg):
                tn = min(seg, t_out - t0)
                n = step * tn * f
                z = ws.get("z0", (blk.c_out, n))
                torch.addmm(bias[i], weight[i], cols[i, :, step * t0 * f : step * t0 * f + n], out=z)
                _mish2_(z, ws.get("t0", (blk.c_out, n)))
                if blk.pool:
                    pairs = z.view(blk.c_out, tn, 2, f)
                    torch.maximum(pairs[:, :, 0], pairs[:, :, 1], out=h[:, t0 : t0 + tn, i])
                else:
                    h[:, t0 : t0 + tn, i].copy_(z.view(blk.c_out, tn, f))
        return h, t_out

    # -- later blocks: the whole chunk at once in [C, T, B, F] ----------------------------------------
    def _block(
        self, h: torch.Tensor, frames: int, blk: _Block, idx: int, ws: _Workspace
    ) -> tuple[torch.Tensor, int]:
        c_in, _, batch, f = h.shape
        row = batch * f
        t_conv = blk.conv_frames(frames)
        p = t_conv * row
        shift = blk.dilation * row
        flat = h.view(c_in, -1)
        y = ws.get(f"y{idx}", (blk.c_out, p))
        y.copy_(blk.bias.expand(-1, p))
        # in blocks of output frames, so each block's output and input stay in L2 across the taps
        cols = max(1, self.gemm_columns // row) * row
        for c0 in range(0, p, cols):
            c1 = min(p, c0 + cols)
            for k in range(blk.kernel):
                y[:, c0:c1].addmm_(blk.taps[k], flat[:, k * shift + c0 : k * shift + c1])
        # GroupNorm statistics per (group, window): reduce over time first (a contiguous middle axis, so
        # vectorised), then over frequency and the group's channels; two passes over centred values keep the
        # accuracy of torch's Welford pass (which is ~30x slower on these shapes)
        g, per = blk.groups, blk.c_out // blk.groups
        n = per * t_conv * f
        yv = y.view(blk.c_out, t_conv, batch, f)
        mean = yv.sum(dim=1).sum(dim=2).view(g, per, batch).sum(dim=1) / n  # [G, B]
        mean_c = mean.repeat_interleave(per, dim=0)  # [C, B]
        tmp = ws.get("t1", (blk.c_out, t_conv, batch, f))
        torch.sub(yv, mean_c[:, None, :, None], out=tmp)
        var = tmp.square_().sum(dim=1).sum(dim=2).view(g, per, batch).sum(dim=1) / n
        scale = (var + blk.eps).rsqrt_().repeat_interleave(per, dim=0) * (
            blk.gamma[:, None] * LOG2E
        )  # [C, B]
        shift_c = blk.beta[:, None] * LOG2E - mean_c * scale
        t_keep = (t_conv // 2) * 2 if blk.pool else t_conv
        z = ws.get(f"z{idx}", (blk.c_out, t_keep, batch, f))
        # two passes, each a broadcast of one [C, 1, B, 1] operand: ~2.5x faster than one addcmul of two
        torch.mul(yv[:, :t_keep], scale[:, None, :, None], out=z)
        z.add_(shift_c[:, None, :, None])
        _mish2_(z, tmp.view(-1)[: z.numel()].view(z.shape))
        if not blk.pool:
            return z, t_conv
        out = ws.get(f"h{idx}", (blk.c_out, t_keep // 2, batch, f))
        pairs = z.view(blk.c_out, t_keep // 2, 2, row)
        torch.maximum(pairs[:, :, 0], pairs[:, :, 1], out=out.view(blk.c_out, t_keep // 2, row))
        return out, t_keep // 2

    # -- the fused path: numpy in, numpy out, a plan per chunk size ----------------------------------
    def _plan(self, ws: _Workspace, batch: int) -> _Plan:
        plan = ws.plans.get(batch)
        if plan is not None:
            return plan
        blk, f = self.blocks[0], self.n_features
        frames = blk.next_frames(self.input_frames)
        first = ws.get("h0", (blk.c_out, frames, batch, f))
        bufs = [ws.get("w0", (batch, blk.c_out, blk.kernel)), ws.get("b0", (batch, blk.c_out)), first]
        later, h = [], first
        for idx, blk in enumerate(self.blocks[1:], start=1):
            c_in, row = h.shape[0], batch * f
            t_conv = blk.conv_frames(frames)
            p, shift = t_conv * row, blk.dilation * row
            flat = h.view(c_in, -1)
            y = ws.get(f"y{idx}", (blk.c_out, p))
            cols = max(1, self.gemm_columns // row) * row
            gemms = [
                (
                    y[:, c0 : min(p, c0 + cols)],
                    blk.taps[k],
                    flat[:, k * shift + c0 : k * shift + min(p, c0 + cols)],
                    k == 0,
                )
                for c0 in range(0, p, cols)
                for k in range(blk.kernel)
            ]
            frames = blk.next_frames(frames)
            h = ws.get(f"h{idx}", (blk.c_out, frames, batch, f))
            gamma2, beta2 = self._fused_affine[idx]
            args = (
                y.view(blk.c_out, t_conv, batch, f).numpy(),
                self._fused_bias[idx],
                blk.groups,
                gamma2,
                beta2,
            )
            later.append((gemms, (*args, blk.eps, blk.pool, h.numpy())))
        hidden = ws.get("fc1 of one", (1, int(self.head[0][0].shape[1]))) if batch == 1 else None
        plan = _Plan(batch, bufs[0].numpy(), bufs[1].numpy(), first.numpy(), later, h, hidden)
        ws.plans[batch] = plan  # after every get: a buffer that grew while building dropped the older plans
        return plan

    def _later_block(self, gemms: list, args: tuple) -> None:
        """A later block on the plan: its tap GEMMs (BLAS; the first overwrites), then its kernel."""
        for out, tap, inp, first in gemms:
            if first:
                out.addmm_(tap, inp, beta=0)
            else:
                out.addmm_(tap, inp)
        self.kernels.norm_mish_pool(*args)

    def _chunk_fused(self, x: np.ndarray, plan: _Plan) -> None:
        blk, kernels = self.blocks[0], self.kernels
        kernels.first_block_affine(
            x,
            blk.weight64,
            blk.bias64,
            self._gamma_flat,
            self._beta64,
            blk.groups,
            blk.eps,
            blk.dilation,
            plan.weight,
            plan.bias,
        )
        kernels.first_block(x, plan.weight, plan.bias, blk.dilation, blk.pool, plan.first)
        for gemms, args in plan.later:
            self._later_block(gemms, args)

    def _predict_fused(self, x: np.ndarray) -> np.ndarray:
        """x [N, T, F] float32 C-contiguous → float64 probabilities [N], on the fused kernels."""
        n = x.shape[0]
        with torch.inference_mode(), self._workspace() as ws:
            weight, bias = self._fc1_weight, self.head[0][1]
            if n == 1:  # the last block's [C, T', 1, F] is already the flattened [1, C·T'·F] order
                plan = self._plan(ws, 1)
                self._chunk_fused(x, plan)
                hidden = plan.hidden
                torch.addmv(bias, weight, plan.last.view(-1), out=hidden.view(-1))
            else:
                feats = ws.get("feats", (n, int(weight.shape[1])))
                flat = feats.numpy()
                for i in range(0, n, self.chunk):
                    plan = self._plan(ws, min(self.chunk, n - i))
                    self._chunk_fused(x[i : i + self.chunk], plan)
                    self.kernels.flatten_windows(plan.last.numpy(), flat[i : i + self.chunk])
                hidden = torch.addmm(bias, feats, weight.t(), out=ws.get("fc1", (n, int(weight.shape[0]))))
            out = np.empty(n)
            if self._tail is not None:  # Mish, the last Linear and the sigmoid in one kernel call
                self.kernels.mish_linear_sigmoid(hidden.numpy(), self._tail[0], self._tail[1], out)
                return out
            for weight_t, bias in self.head[1:]:
                hidden = torch.addmm(bias, TF.mish(hidden), weight_t)
            out[:] = torch.sigmoid(hidden).reshape(-1).numpy()
            return out

    def _features_chunk(self, x: torch.Tensor, ws: _Workspace, feats: torch.Tensor) -> None:
        """The conv stack over one chunk of windows, flattened into feats [B, C·T'·F]."""
        h, frames = self._first_block(x, self.blocks[0], ws)
        for idx, blk in enumerate(self.blocks[1:], start=1):
            h, frames = self._block(h, frames, blk, idx, ws)
        feats.view(x.shape[0], h.shape[0], h.shape[1], h.shape[3]).copy_(h.permute(2, 0, 1, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, input_frames, n_features] → probabilities [B] float32."""
        if x.ndim != 3 or x.shape[1] != self.input_frames or x.shape[2] != self.n_features:
            raise ValueError(
                f"expected windows [N, {self.input_frames}, {self.n_features}], got {tuple(x.shape)}"
            )
        x = x.to(torch.float32).contiguous()
        if x.shape[0] == 0:
            return torch.zeros(0)
        if self.kernels is not None:
            return torch.from_numpy(self.predict(x.detach().numpy())).to(torch.float32)
        if self.input_affine is not None:
            mean, scale = self.input_affine
            x = (x - mean).mul_(scale)
        with torch.inference_mode(), self._workspace() as ws:
            feats = ws.get("feats", (x.shape[0], int(self.head[0][0].shape[0])))
            for i in range(0, x.shape[0], self.chunk):
                self._features_chunk(x[i : i + self.chunk], ws, feats[i : i + self.chunk])
            # the head once over the whole batch: fc1's weights (2.75 MB for SpiraConvV2) stream once per
            # call, not once per chunk
            out = feats
            for i, (weight_t, bias) in enumerate(self.head):
                out = torch.addmm(bias, out if i == 0 else TF.mish(out), weight_t)
            return torch.sigmoid(out).reshape(-1)

    __call__ = forward

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """The serving port: windows [N, T, F] → float64 probabilities [N] (as `predict_windows` returns)."""
        x = np.ascontiguousarray(windows, dtype=np.float32)
        if self.kernels is None or x.ndim != 3 or x.shape[0] == 0:
            return self.forward(torch.from_numpy(x)).double().numpy()
        if x.shape[1] != self.input_frames or x.shape[2] != self.n_features:
            raise ValueError(
                f"expected windows [N, {self.input_frames}, {self.n_features}], got {tuple(x.shape)}"
            )
        if self.input_affine is not None:
            mean, scale = self.input_affine
            x = (x - mean.numpy()) * scale.numpy()
        return self._predict_fused(x)
