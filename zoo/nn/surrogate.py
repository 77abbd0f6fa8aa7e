"""Spike functions: exact Heaviside forward, smooth surrogate backward.

Each is a `torch.autograd.Function`; `spike(x, "atan", alpha=2.0)` picks one by name. The forward
fires on x > 0 (`heaviside_atan`, `heaviside_fast_sigmoid`, snnTorch's convention) or on x >= 0
(`heaviside_triangle`, the SpikingSSMs convention used by SPikE-SSM's neuron), and returns values
exactly in {0, 1} in the input's dtype so the profiler can see them as spikes.
"""

from __future__ import annotations

import math

import torch

SURROGATES = ("atan", "fast_sigmoid", "triangle", "straight_through")


class HeavisideATan(torch.autograd.Function):
    """d s/dx = (alpha/2) / (1 + (pi alpha x / 2)^2); alpha = 2 gives peak 1, HWHM 1/pi."""

    @staticmethod
    def forward(ctx, x, alpha: float):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        a = ctx.alpha
        return grad * (a / 2) / (1 + (math.pi * a * x / 2) ** 2), None


class HeavisideFastSigmoid(torch.autograd.Function):
    """SuperSpike: d s/dx = 1 / (1 + k|x|)^2."""

    @staticmethod
    def forward(ctx, x, k: float):
        ctx.save_for_backward(x)
        ctx.k = k
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1 + ctx.k * x.abs()) ** 2, None


class HeavisideTriangle(torch.autograd.Function):
    """d s/dx = max(0, 1 - |x| / width) / width; fires on x >= 0 (firing exactly at threshold)."""

    @staticmethod
    def forward(ctx, x, width: float):
        ctx.save_for_backward(x)
        ctx.width = width
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        w = ctx.width
        return grad * torch.clamp(1 - x.abs() / w, min=0) / w, None


class HeavisideStraightThrough(torch.autograd.Function):
    """d s/dx = 1 for |x| <= width, else 0 (straight-through estimator, clipped)."""

    @staticmethod
    def forward(ctx, x, width: float):
        ctx.save_for_backward(x)
        ctx.width = width
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= ctx.width).to(grad.dtype), None


class StraightThroughClamp(torch.autograd.Function):
    """Identity forward for values already in a range; gradient passes where lo <= x <= hi.

    Used as `clamp(x, 0, 1)` with a straight-through gradient inside [lo, hi] and zero outside.
    """

    @staticmethod
    def forward(ctx, x, lo: float, hi: float):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        inside = (x >= ctx.lo) & (x <= ctx.hi)
        return grad * inside.to(grad.dtype), None, None


def spike(x: torch.Tensor, surrogate: str = "atan", scale: float | None = None) -> torch.Tensor:
    """Heaviside spike of `x` with the named surrogate gradient.

    `scale` is alpha for atan (default 2), k for fast_sigmoid (default 25), the half-width for
    triangle and straight_through (default 1). Raises ValueError for an unknown surrogate name.
    """
    if surrogate == "atan":
        return HeavisideATan.apply(x, 2.0 if scale is None else scale)
    if surrogate == "fast_sigmoid":
        return HeavisideFastSigmoid.apply(x, 25.0 if scale is None else scale)
    if surrogate == "triangle":
        return HeavisideTriangle.apply(x, 1.0 if scale is None else scale)
    if surrogate == "straight_through":
        return HeavisideStraightThrough.apply(x, 1.0 if scale is None else scale)
    raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")


def straight_through_clamp(x: torch.Tensor, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    """clamp(x, lo, hi) whose gradient is 1 inside [lo, hi] and 0 outside."""
    return StraightThroughClamp.apply(x, lo, hi)
