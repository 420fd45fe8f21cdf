"""Fused elementwise kernels of the fast path, compiled by numba (issue 21).

The fast path's GEMMs run at the BLAS's rate; what kept it at ~3x the GEMM floor were the passes around them:
block 1's Mish over 32×388×40 values per window (exp2, three arithmetic passes, the pool's `maximum`, each
over a 2 MB buffer that leaves L2) and, in the later blocks, GroupNorm's statistics, its affine, Mish and
the pool, each a separate torch call. These kernels do that work in one pass per cache tile:

- `first_block_affine(x, w, b, gamma, beta, groups, eps, dilation, weight_out, bias_out)`: block 1's
  GroupNorm statistics from the input's lagged frame products (float64), folded into per-window conv
  weights and bias.
- `first_block(x, weight, bias, dilation, pool, out)`: block 1 per window: the conv with those weights,
  Mish and MaxPool over a tile of 2·16 frames held in L1; only the pooled values are written.
- `norm_mish_pool(y, bias, groups, gamma, beta, eps, pool, out)`: a later block after its tap GEMMs: the conv
  bias and GroupNorm's statistics per (group, window) in one float64 pass (sums of x − a pilot value of the
  group, so the variance does not cancel), then affine, Mish and [MaxPool] in one pass over the conv output.

Mish is computed as in `model._mish2_`: on z' = z·log2(e), log2(e)·mish(z) = z' − z' / (1 + e + e²/2),
e = 2^z'. 2^z' is Cephes' exp2f (round to nearest, degree-6 polynomial on [−½, ½], exponent bits; relative
error ≤ 2.4e-7 tested, ~1.2e-7 measured), written so LLVM vectorises it (AVX2 here): round(x) by adding
1.5·2^23, the exponent through int32 bit casts, never a libm call or a float↔int conversion; the polynomial
in Estrin's form (~20% faster than Horner's here: shorter dependency chains). z' is clamped to [−126, 127];
above ~64 e²/2 is inf and the result is z' exactly (mish's limit), as in the torch version. NaN stays NaN.

`error_model="numpy"` (division never raises, so loops with a division vectorise) and the fastmath flags
`contract` (FMA) and `nsz` only: no reciprocal approximations, infinities and NaN kept, and no reassociation
except in block 1's float64 moment sums (vectorised; ~1e-16 relative). Compiled on first use and cached by
numba (`__pycache__` beside this file, else the user's cache directory, or `NUMBA_CACHE_DIR`); where none is
writable (a read-only image) they compile in memory in each process.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

F32 = np.float32
TILE = 16  # block 1's pooled frames per tile: 2·16·F conv values (5 KB at F = 40) stay in L1
_FLAGS = {"contract", "nsz"}


def _compiled(flags=_FLAGS):
    """njit with numba's on-disk cache where it finds a writable cache directory; without one (a read-only
    image and no NUMBA_CACHE_DIR) numba refuses `cache=True` at decoration, so compile in memory instead."""

    def wrap(fn):
        try:
            return nb.njit(fastmath=flags, error_model="numpy", cache=True, nogil=True)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return nb.njit(fastmath=flags, error_model="numpy", nogil=True)(fn)

    return wrap


_jit = _compiled()


@intrinsic
def _int_bits_as_float(typingctx, bits):
    """The float32 whose bit pattern is the int32 `bits` (no conversion: a bit cast, vectorisable)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@intrinsic
def _float_bits_as_int(typingctx, value):
    """The int32 whose bit pattern is the float32 `value` (a bit cast, vectorisable)."""
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


ROUNDER = F32(12582912.0)  # 1.5·2^23: x + ROUNDER holds round(x) in its low mantissa bits (|x| ≤ 2^22)


@nb.njit(fastmath=_FLAGS, error_model="numpy", inline="always")
def _exp2_unclamped(x):
    """exp2f's 2^x for x already in [−126, 127]."""
    t = x + ROUNDER
    f = x - (t - ROUNDER)
    f2 = f * f
    a = F32(6.931472028550421e-1) * f + F32(1.0)
    b = F32(5.550332471162809e-2) * f + F32(2.402264791363012e-1)
    c = F32(1.339887440266574e-3) * f + F32(9.618437357674640e-3)
    c = F32(1.535336188319500e-4) * f2 + c
    p = (c * f2 + b) * f2 + a
    return p * _int_bits_as_float((_float_bits_as_int(t) + np.int32(127 - 0x4B400000)) << np.int32(23))


@nb.njit(fastmath=_FLAGS, error_model="numpy", inline="always")
def exp2f(x):
    """2^x for float32 x (Cephes exp2f's polynomial): 2^n · p(f), n = round(x), f = x − n ∈ [−½, ½].

    n comes from adding 1.5·2^23 (the sum's low mantissa bits are n, its value minus 1.5·2^23 is n as a float:
    no conversion instruction), 2^n from those bits shifted into the exponent; the polynomial in Estrin's
    form (shorter dependency chains than Horner's, the same coefficients)."""
    x = F32(127.0) if x > F32(127.0) else x  # NaN stays NaN
    x = F32(-126.0) if x < F32(-126.0) else x
    return _exp2_unclamped(x)


@nb.njit(fastmath=_FLAGS, error_model="numpy", inline="always")
def mish2(z):
    """log2(e)·mish(z) from z' = z·log2(e): z' − z' / (1 + e·(1 + e/2)), e = 2^z'.

    The clamp is one min and one max (a NaN z' may clamp to a number, but z' − z'/d is NaN again), and
    1 + e + e²/2 is two FMAs; together ~10% fewer instructions than exp2f's NaN-keeping selects."""
    e = _exp2_unclamped(max(min(z, F32(127.0)), F32(-126.0)))
    return z - z / (e * (F32(0.5) * e + F32(1.0)) + F32(1.0))


@_jit
def power_spectrum(pairs, out):
    """out[t, k] = re² + im² of an rFFT's output seen as float32 pairs [frames, bins, 2]: |X|² in one pass
    (torch's square-in-place then add of the strided halves took two passes and twice the traffic)."""
    for t in range(out.shape[0]):
        for k in range(out.shape[1]):
            re = pairs[t, k, 0]
            im = pairs[t, k, 1]
            out[t, k] = re * re + im * im


@_jit
def exp2_array(x, out):
    """out = 2^x elementwise (1-D float32): the kernels' exp2, for tests."""
    for i in range(x.size):
        out[i] = exp2f(x[i])


@_jit
def mish2_array(x, out):
    """out = log2(e)·mish(x / log2(e)) elementwise (1-D float32): the kernels' Mish, for tests."""
    for i in range(x.size):
        out[i] = mish2(x[i])


@_compiled(_FLAGS | {"reassoc"})
def first_block_affine(x, w, b, gamma, beta, groups, eps, dilation, weight_out, bias_out):
    """Block 1's GroupNorm folded into its conv, per window: x [B, T, F] float32; w [C, k], b, gamma, beta
    [C] float64 → weight_out [B, C, k], bias_out [B, C] float32 whose conv output is log2(e) × the GroupNorm
    output. (`FastSpiraConvV2._first_block_affine` in one compiled pass; the same float64 moments.)

    The conv output of channel c at (t, f) is w_c · u(t, f) + b_c, u(t, f) = (x[t + d·j, f])_j: its mean and
    variance need only E[u_j] and E[u_i u_j], sums of the lagged frame products q_l[t] = Σ_f x[t, f]·x[t +
    d·l, f] over a range of t, in float64 (the taps are shifts of one smooth signal: the
    variance is a difference of large sums). Its float64 sums over F may be reassociated (vectorised): that
    moves them by ~1e-16 relative, against the ~1e-7 of float32 that every other pass carries."""
    batch, frames, f = x.shape
    c_out, k = w.shape
    t_conv = frames - dilation * (k - 1)
    n = float(t_conv * f)
    per = c_out // groups
    sums = np.empty(k, np.float64)  # sums[j]: Σ of u_j over the conv's frames
    prods = np.empty((k, k), np.float64)  # prods[l, m]: Σ of u_m·u_(m+l) over the conv's frames
    mu = np.empty(k, np.float64)
    cov = np.empty((k, k), np.float64)
    mean_c = np.empty(c_out, np.float64)
    var_c = np.empty(c_out, np.float64)
    log2e = 1.0 / np.log(2.0)
    span = t_conv * f  # the conv's frames, flattened
    edge = dilation * f  # one tap's shift, flattened
    for bi in range(batch):
        xf = x[bi].reshape(-1)
        # each sum is one long vectorised run over the flattened window; the next tap's range is the same
        # run shifted by one dilation: subtract the frames it leaves, add the ones it enters
        head = xf[:span]
        s = 0.0
        for u in range(span):
            s += np.float64(head[u])
        sums[0] = s
        for j in range(1, k):
            lo = (j - 1) * edge
            out_run, in_run = xf[lo : lo + edge], xf[lo + span : lo + span + edge]
            left = 0.0
            entered = 0.0
            for u in range(edge):
                left += np.float64(out_run[u])
                entered += np.float64(in_run[u])
            s = s - left + entered
            sums[j] = s
        for lag in range(k):
            shift = lag * edge
            later = xf[shift : shift + span]
            s = 0.0
            for u in range(span):
                s += np.float64(head[u]) * np.float64(later[u])
            prods[lag, 0] = s
            for m in range(1, k - lag):
                lo = (m - 1) * edge
                out_a, out_b = xf[lo : lo + edge], xf[lo + shift : lo + shift + edge]
                in_a, in_b = (
                    xf[lo + span : lo + span + edge],
                    xf[lo + span + shift : lo + span + shift + edge],
                )
                left = 0.0
                entered = 0.0
                for u in range(edge):
                    left += np.float64(out_a[u]) * np.float64(out_b[u])
                    entered += np.float64(in_a[u]) * np.float64(in_b[u])
                s = s - left + entered
                prods[lag, m] = s
        for j in range(k):
            mu[j] = sums[j] / n
        for i in range(k):
            for j in range(k):
                cov[i, j] = prods[abs(i - j), min(i, j)] / n - mu[i] * mu[j]
        for c in range(c_out):
            m = b[c]
            v = 0.0
            for i in range(k):
                m += w[c, i] * mu[i]
                for j in range(k):
                    v += w[c, i] * cov[i, j] * w[c, j]
            mean_c[c] = m
            var_c[c] = v
        for g in range(groups):
            mean_g = 0.0
            for c in range(g * per, (g + 1) * per):
                mean_g += mean_c[c]
            mean_g /= per
            var_g = 0.0
            for c in range(g * per, (g + 1) * per):
                var_g += var_c[c] + (mean_c[c] - mean_g) ** 2
            var_g /= per
            inv = 1.0 / np.sqrt(var_g + eps)
            for c in range(g * per, (g + 1) * per):
                scale = gamma[c] * inv
                for j in range(k):
                    weight_out[bi, c, j] = np.float32(log2e * scale * w[c, j])
                bias_out[bi, c] = np.float32(log2e * (scale * b[c] + beta[c] - mean_g * scale))


@_jit
def first_block(x, weight, bias, dilation, pool, out):
    """Block 1 for every window: x [B, T, F] float32, weight [B, C, k] and bias [B, C] (per window, GroupNorm
    and log2(e) folded in) → out [C, T', B, F] = [pool](mish2(conv)); T' = t_conv // 2 with the pool."""
    batch, f = x.shape[0], x.shape[2]
    c_out, k = weight.shape[1], weight.shape[2]
    t_out = out.shape[1]
    step = 2 if pool else 1
    acc = np.empty(step * TILE * f, np.float32)
    for b in range(batch):
        xf = x[b].reshape(-1)
        for c in range(c_out):
            bc = bias[b, c]
            for t0 in range(0, t_out, TILE):
                tn = min(TILE, t_out - t0)
                n = step * tn * f
                base = step * t0 * f
                for i in range(n):
                    acc[i] = bc
                j = 0
                while j < k:  # taps in fours, then pairs, then one: fewer passes over the accumulator
                    w0 = weight[b, c, j]
                    s0 = xf[base + dilation * j * f : base + dilation * j * f + n]
                    if j + 3 < k:
                        w1, w2, w3 = weight[b, c, j + 1], weight[b, c, j + 2], weight[b, c, j + 3]
                        s1 = xf[base + dilation * (j + 1) * f : base + dilation * (j + 1) * f + n]
                        s2 = xf[base + dilation * (j + 2) * f : base + dilation * (j + 2) * f + n]
                        s3 = xf[base + dilation * (j + 3) * f : base + dilation * (j + 3) * f + n]
                        for i in range(n):
                            acc[i] += w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i]
                        j += 4
                    elif j + 1 < k:
                        w1 = weight[b, c, j + 1]
                        s1 = xf[base + dilation * (j + 1) * f : base + dilation * (j + 1) * f + n]
                        for i in range(n):
                            acc[i] += w0 * s0[i] + w1 * s1[i]
                        j += 2
                    else:
                        for i in range(n):
                            acc[i] += w0 * s0[i]
                        j += 1
                for i in range(n):
                    acc[i] = mish2(acc[i])
                for r in range(tn):
                    dst = out[c, t0 + r, b]
                    if pool:
                        even = acc[2 * r * f : (2 * r + 1) * f]
                        odd = acc[(2 * r + 1) * f : (2 * r + 2) * f]
                        for i in range(f):
                            dst[i] = even[i] if even[i] > odd[i] else odd[i]
                    else:
                        row = acc[r * f : (r + 1) * f]
                        for i in range(f):
                            dst[i] = row[i]


@_jit
def norm_mish_pool(y, bias, groups, gamma, beta, eps, pool, out):
    """A later block after its conv: y [C, T, B, F] float32 (the conv's GEMMs, without its bias [C]) → out
    [C, T', B, F] = [pool](mish2(GroupNorm(y + bias) · log2(e))); gamma, beta [C] float32 already times
    log2(e). The bias is added here, in the passes that read y anyway, not in a pass of its own. The statistics
    run over all T frames (the odd last one too, as the eager module's GroupNorm), the pool drops it."""
    c_out, frames, batch, f = y.shape
    if batch == 1:  # one window: each channel's [T, F] values as one long run (no F-long loops)
        _norm_mish_pool_one(y, bias, groups, gamma, beta, eps, pool, out)
        return
    per = c_out // groups
    row = batch * f
    s1 = np.empty(row, np.float64)
    s2 = np.empty(row, np.float64)
    pilot = np.empty(row, np.float64)
    scale = np.empty((c_out, row), np.float32)
    shift = np.empty((c_out, row), np.float32)
    n = float(per * frames * f)
    for g in range(groups):
        s1[:] = 0.0
        s2[:] = 0.0
        for b in range(batch):  # one value per (group, window): sums of x − pilot keep the variance exact
            pilot[b * f : (b + 1) * f] = np.float64(y[g * per, 0, b, 0]) + np.float64(bias[g * per])
        for c in range(g * per, (g + 1) * per):
            bc = np.float64(bias[c])
            for t in range(frames):
                v = y[c, t].reshape(-1)
                for i in range(row):
                    x = (np.float64(v[i]) + bc) - pilot[i]
                    s1[i] += x
                    s2[i] += x * x
        for b in range(batch):
            m1 = 0.0
            m2 = 0.0
            for i in range(b * f, (b + 1) * f):
                m1 += s1[i]
                m2 += s2[i]
            d = m1 / n  # E[x − p]
            mean = pilot[b * f] + d
            var = max(m2 / n - d * d, 0.0)
            inv = 1.0 / np.sqrt(var + eps)
            for c in range(g * per, (g + 1) * per):
                sc = np.float64(gamma[c]) * inv
                scale[c, b * f : (b + 1) * f] = np.float32(sc)
                shift[c, b * f : (b + 1) * f] = np.float32(
                    np.float64(beta[c]) + (np.float64(bias[c]) - mean) * sc
                )
    t_out = out.shape[1]
    for c in range(c_out):
        sc = scale[c]
        sh = shift[c]
        for t in range(t_out):
            dst = out[c, t].reshape(-1)
            if pool:
                even = y[c, 2 * t].reshape(-1)
                odd = y[c, 2 * t + 1].reshape(-1)
                for i in range(row):
                    a = mish2(even[i] * sc[i] + sh[i])
                    o = mish2(odd[i] * sc[i] + sh[i])
                    dst[i] = a if a > o else o
            else:
                src = y[c, t].reshape(-1)
                for i in range(row):
                    dst[i] = mish2(src[i] * sc[i] + sh[i])


LANES = 256  # _norm_mish_pool_one's float64 partial sums: one run of 256 values at a time


@_jit
def _norm_mish_pool_one(y, bias, groups, gamma, beta, eps, pool, out):
    """`norm_mish_pool` for one window (y [C, T, 1, F]): the same sums, scale and shift, but each channel's
    T·F values are read as one run (the sums in LANES partial sums, Mish into a scratch run, then the pool
    by rows), so every loop is long enough to vectorise without a scalar remainder per frame."""
    c_out, frames, _, f = y.shape
    per = c_out // groups
    m = frames * f
    full = m // LANES * LANES
    s1 = np.empty(LANES, np.float64)
    s2 = np.empty(LANES, np.float64)
    scale = np.empty(c_out, np.float32)
    shift = np.empty(c_out, np.float32)
    n = float(per * m)
    for g in range(groups):
        s1[:] = 0.0
        s2[:] = 0.0
        pilot = np.float64(y[g * per, 0, 0, 0]) + np.float64(bias[g * per])
        for c in range(g * per, (g + 1) * per):
            bc = np.float64(bias[c]) - pilot
            v = y[c].reshape(-1)
            for j0 in range(0, full, LANES):
                run = v[j0 : j0 + LANES]
                for i in range(LANES):
                    x = np.float64(run[i]) + bc
                    s1[i] += x
                    s2[i] += x * x
            rest = v[full:]
            for i in range(m - full):
                x = np.float64(rest[i]) + bc
                s1[i] += x
                s2[i] += x * x
        m1 = 0.0
        m2 = 0.0
        for i in range(LANES):
            m1 += s1[i]
            m2 += s2[i]
        d = m1 / n  # E[x − p]
        mean = pilot + d
        var = max(m2 / n - d * d, 0.0)
        inv = 1.0 / np.sqrt(var + eps)
        for c in range(g * per, (g + 1) * per):
            sc = np.float64(gamma[c]) * inv
            scale[c] = np.float32(sc)
            shift[c] = np.float32(np.float64(beta[c]) + (np.float64(bias[c]) - mean) * sc)
    t_out = out.shape[1]
    z = np.empty(m, np.float32)
    for c in range(c_out):
        sc = scale[c]
        sh = shift[c]
        v = y[c].reshape(-1)
        if pool:
            for i in range(2 * t_out * f):
                z[i] = mish2(v[i] * sc + sh)
            for t in range(t_out):
                dst = out[c, t].reshape(-1)
                even = z[2 * t * f : (2 * t + 1) * f]
                odd = z[(2 * t + 1) * f : (2 * t + 2) * f]
                for i in range(f):
                    dst[i] = even[i] if even[i] > odd[i] else odd[i]
        else:
            dst = out[c].reshape(-1)
            for i in range(m):
                dst[i] = mish2(v[i] * sc + sh)


@_jit
def mish_linear_sigmoid(hidden, weight, bias, out):
    """The head after its first Linear layer: out[n] = sigmoid(mish(hidden[n]) · weight + bias), hidden [N, H]
    float32, weight [H] float64 (the last Linear layer, one output) → out [N] float64. Mish here is the
    plain one (tanh(softplus(x))), in float64: ~0.1 µs a value against ~10 µs a torch call at batch 1."""
    n, h = hidden.shape
    for r in range(n):
        z = bias
        for i in range(h):
            x = np.float64(hidden[r, i])
            sp = x if x > 30.0 else np.log1p(np.exp(x))  # softplus; tanh(sp) rounds to 1 above 30
            z += x * np.tanh(sp) * weight[i]
        out[r] = 1.0 / (1.0 + np.exp(-z))


@_jit
def flatten_windows(h, feats):
    """The last block's output h [C, T', B, F] → feats [B, C·T'·F] in [C, T', F] order per window (a strided
    copy torch does in ~20 µs a window at batch 2, this in ~1)."""
    c_out, frames, batch, f = h.shape
    for b in range(batch):
        dst = feats[b]
        for c in range(c_out):
            for t in range(frames):
                src = h[c, t, b]
                at = (c * frames + t) * f
                for i in range(f):
                    dst[at + i] = src[i]
