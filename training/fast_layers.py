"""SpiraConvV2's training-time layers with cheaper CPU kernels: the same functions, the same parameters.

    model = build_model(params)
    use_fast_layers(model)        # in place; state_dict, bundle and serving are unchanged

A profile of one training step on one core (batches of 5 windows) put 41% of the time in Mish's forward and
backward kernels (scalar code), 15% in MaxPool2d((2, 1)) and 12% in Dropout's Bernoulli draw, against 20%
in the convolutions. The replacements below compute the same functions with vectorised torch passes:

- Mish: y = x·t with t = tanh(softplus(x)) = u / (u + 2), u = e^x·(e^x + 2) (no cancellation for x ≪ 0,
  where t ≈ e^x), and its derivative t + x·σ(x)·(1 − t²) = t + x·4e^x(e^x + 1)/(u + 2)², both computed in
  the forward pass; x is clamped at 20 before the exponential, where t is 1 in float32 already.
- MaxPool2d((2, 1)) over time: the larger of the even and odd frame (the odd last frame dropped, as
  floor mode does); the gradient goes to that element, to the even one on ties, as max_pool2d's does.
- Dropout: keep an element where a uniform draw from torch's generator is ≥ p, scale by 1 / (1 − p).

The replacements subclass the layers they stand in for, so code that reads the module's structure (the
fast inference path in spira_core.fastpath, which the validation pass uses) sees the same SpiraConvV2.
Eval mode is unchanged in meaning: Dropout is the identity, Mish and the pooling are the same functions.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

_CLAMP = 20.0  # tanh(softplus(20)) rounds to 1.0 in float32; beyond it e^x only risks overflow


class _MishFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        e = x.clamp(max=_CLAMP).exp_()
        u = (e + 2.0).mul_(e)  # e(e + 2) = (1 + e)^2 - 1
        d = u + 2.0
        t = u.div_(d)  # tanh(softplus(x))
        y = x * t
        if ctx.needs_input_grad[0]:
            # σ(x)·(1 − t²) = 4e(e + 1) / (u + 2)²: with x it makes the derivative, without a second exp
            k = (e + 1.0).mul_(e).mul_(4.0).div_(d.square_())
            ctx.save_for_backward(x, t, k)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x, t, k = ctx.saved_tensors
        return torch.addcmul(t, x, k).mul_(grad)


def mish(x: torch.Tensor) -> torch.Tensor:
    return _MishFunction.apply(x)


class FastMish(nn.Mish):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mish(x)


class _PairMaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        even = 2 * (x.shape[2] // 2)
        a, b = x[:, :, 0:even:2], x[:, :, 1:even:2]
        odd_wins = b > a  # ties go to the even frame, the first index max_pool2d's scan keeps
        ctx.save_for_backward(odd_wins)
        ctx.shape = x.shape
        return torch.where(odd_wins, b, a)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (odd_wins,) = ctx.saved_tensors
        out = grad.new_zeros(ctx.shape)
        even = 2 * (ctx.shape[2] // 2)
        torch.mul(grad, odd_wins.logical_not(), out=out[:, :, 0:even:2])
        torch.mul(grad, odd_wins, out=out[:, :, 1:even:2])
        return out


class PairMaxPool(nn.MaxPool2d):
    """MaxPool2d((2, 1)) on [B, C, T, F]: the larger of frames 2i and 2i + 1, the gradient to that one."""

    def __init__(self) -> None:
        super().__init__(kernel_size=(2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _PairMaxFunction.apply(x)


class FastDropout(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return torch.zeros_like(x)
        keep = torch.rand(x.shape, dtype=x.dtype, device=x.device) >= self.p
        return x * keep * (1.0 / (1.0 - self.p))


def _replacement(layer: nn.Module) -> nn.Module | None:
    if type(layer) is nn.Mish:
        return FastMish()
    if type(layer) is nn.Dropout:
        return FastDropout(layer.p)
    if type(layer) is nn.MaxPool2d:
        spec = (layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.ceil_mode)
        if spec in (((2, 1), (2, 1), 0, 1, False), ((2, 1), (2, 1), (0, 0), (1, 1), False)):
            return PairMaxPool()
    return None


def _reference(layer: nn.Module) -> nn.Module | None:
    if type(layer) is FastMish:
        return nn.Mish()
    if type(layer) is FastDropout:
        return nn.Dropout(layer.p)
    if type(layer) is PairMaxPool:
        return nn.MaxPool2d((2, 1))
    return None


def _swap(model: nn.Module, replacement) -> nn.Module:
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            other = replacement(child)
            if other is not None:
                other.train(child.training)
                setattr(parent, name, other)
    return model


def use_fast_layers(model: nn.Module) -> nn.Module:
    """Swap every plain Mish, Dropout and MaxPool2d((2, 1)) in `model` for its fast twin, in place."""
    return _swap(model, _replacement)


def reference_layers(model: nn.Module) -> nn.Module:
    """A copy of `model` with torch's own layers back in place of the fast twins (same weights, same
    function): what code that derives from torch's layers (the CPU fast path) reads."""
    return _swap(copy.deepcopy(model), _reference)
