"""fvcore as the dense cross-check of the dispatch counter.

fvcore's FlopCountAnalysis traces the model with torch.jit and prices each traced op from shapes
only; one fvcore "flop" is one MAC. Out of the box it skips FFTs and elementwise ops and counts a
complex MAC as one. `fvcore_analysis` adds handles with this profiler's conventions: FFTs (2.5 n
log2 n real, 5 n log2 n complex), complex contractions (4 real MACs each) and elementwise ops.
`cross_check` then compares, per module (submodules included) and per category:

* contraction: fvcore MACs vs the counter's dense MACs (shape-only, so they agree on any model;
  on dense models the dense MACs are the MACs);
* fft: FFT FLOPs;
* norm: fvcore's norm estimates, which the counter adopts.

Elementwise totals are reported side by side but not required to agree: the traced graph keeps
ops (linear's bias add, glu) that the dispatcher fuses or splits differently.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

import torch.nn as nn

from zoo_profiler.counter import count
from zoo_profiler.rules import CATEGORY, POINTWISE_NAMES

FVCORE_CONTRACTIONS = ("linear", "addmm", "matmul", "mm", "bmm", "einsum", "_convolution")
FVCORE_NORMS = ("batch_norm", "group_norm", "layer_norm", "instance_norm")
FVCORE_FFTS = ("fft_rfft", "fft_irfft", "fft_fft", "fft_ifft", "fft_rfft2", "fft_irfft2", "fft_fft2",
               "fft_ifft2", "fft_rfftn", "fft_irfftn", "fft_fftn", "fft_ifftn")
FVCORE_FREE = ("real", "imag", "complex", "view_as_complex", "view_as_real", "conj", "resolve_conj", "pad",
               "constant_pad_nd", "flip", "roll")
COMPARED = ("contraction", "fft", "norm")


def _shape(value) -> list[int] | None:
    from fvcore.nn.jit_handles import get_shape

    return get_shape(value)


def _is_complex(value) -> bool:
    try:
        return "Complex" in str(value.type().scalarType())
    except RuntimeError:  # not a tensor
        return False


def _complex_aware(handle):
    """A contraction handle that counts a complex MAC as 4 real MACs."""
    def wrapped(inputs, outputs):
        flops = handle(inputs, outputs)
        values = list(inputs)
        for v in inputs:  # einsum passes its operands as one list
            if v.node().kind() == "prim::ListConstruct":
                values.extend(v.node().inputs())
        return flops * 4 if any(_is_complex(v) for v in values if _shape(v) is not None) else flops
    return wrapped


def _fft_handle(op: str):
    """2.5 n log2 n per real transform, 5 n log2 n per complex one; n = the transformed sizes."""
    real = "rfft" in op  # rfft*/irfft*: real input or output
    inverse_real = op.startswith("fft_irfft")

    def handle(inputs, outputs):
        x_shape, out_shape = _shape(inputs[0]), _shape(outputs[0])
        dim = inputs[2].toIValue()
        ndim = len(x_shape)
        if isinstance(dim, int):
            dims = [dim]
        elif dim is None:  # the *n transforms: the last len(s) dims, or all of them
            size = inputs[1].toIValue()
            dims = list(range(ndim - len(size), ndim)) if isinstance(size, list) else list(range(ndim))
        else:
            dims = list(dim)
        dims = [d % ndim for d in dims]
        if inverse_real or not real:  # output sizes along the transformed dims are exact
            n = math.prod(out_shape[d] for d in dims)
            total = math.prod(out_shape)
        else:  # real input: transformed sizes from the output, the halved last one from the input
            # (a traced `n` computed from shapes is not a constant, so it cannot be read back)
            lengths = [out_shape[d] for d in dims[:-1]]
            half, given = out_shape[dims[-1]], x_shape[dims[-1]]
            lengths.append(given if given // 2 + 1 == half else 2 * (half - 1))
            n = math.prod(lengths)
            total = math.prod(x_shape[d] for d in range(ndim) if d not in dims) * n
        if n <= 1:
            return 0
        return int(round((2.5 if real else 5.0) * n * math.log2(n) * (total // n)))
    return handle


def _pointwise_handle(per_real: int, per_complex_pair: int | None = None):
    def handle(inputs, outputs):
        out = _shape(outputs[0])
        if out is None:
            return 0
        cplx = [_is_complex(v) for v in inputs[:2] if _shape(v) is not None]
        if per_complex_pair is not None and len(cplx) == 2 and all(cplx):
            per = per_complex_pair
        else:
            per = 2 * per_real if any(cplx) else per_real
        return per * math.prod(out)
    return handle


def _reduction_handle(inputs, outputs):
    shape = _shape(inputs[0])
    return math.prod(shape) if shape is not None else 0


def fvcore_analysis(model: nn.Module, inputs: Any):
    """A FlopCountAnalysis of `model` on `inputs` with this profiler's extra handles installed."""
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS

    analysis = FlopCountAnalysis(model, inputs)
    handles: dict[str, Any] = {}
    for op in FVCORE_CONTRACTIONS:
        handles[f"aten::{op}"] = _complex_aware(_DEFAULT_SUPPORTED_OPS[f"aten::{op}"])
    for op in FVCORE_FFTS:
        handles[f"aten::{op}"] = _fft_handle(op)
    for op in POINTWISE_NAMES:
        if "." not in op:  # traced ops carry no overload name
            handles[f"aten::{op}"] = _pointwise_handle(1)
    handles["aten::mul"] = _pointwise_handle(1, per_complex_pair=6)
    handles["aten::div"] = _pointwise_handle(1, per_complex_pair=11)
    handles["aten::glu"] = _pointwise_handle(2)
    for op in ("sum", "mean", "amax", "amin", "max", "min", "cumsum"):
        handles[f"aten::{op}"] = _reduction_handle
    for op in FVCORE_FREE:
        handles[f"aten::{op}"] = None  # fvcore's way to mark an op as free
    analysis.set_op_handle(**handles)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    return analysis


def _fvcore_category(op: str) -> str:
    if op in FVCORE_CONTRACTIONS:
        return "contraction"
    if op in FVCORE_FFTS:
        return "fft"
    if op in FVCORE_NORMS:
        return "norm"
    return "elementwise"


def cross_check(model: nn.Module, inputs: Any) -> dict[str, Any]:
    """Per module: fvcore vs dispatch counts for contraction MACs, FFT FLOPs and norm FLOPs.

    Returns {"modules": {fqn: {category: {"fvcore": n, "dispatch": n}}}, "agree": bool,
    "disagreements": [...], "fvcore_unsupported": {op: calls}}. The caller sets eval/no_grad.
    """
    from zoo_profiler.api import registered_rules

    analysis = fvcore_analysis(model, inputs)
    by_module = analysis.by_module_and_operator()
    counts, _ = count(model, inputs, registered_rules())

    dispatch: dict[str, Counter] = defaultdict(Counter)
    for (module, op), cost in counts.module_ops.items():
        category = CATEGORY.get(op, "plugin")
        value = cost["dense_macs"] if category == "contraction" else cost["other_flops"]
        parts = module.split(".") if module else []
        for i in range(len(parts) + 1):  # inclusive: charge the module and all its parents
            dispatch[".".join(parts[:i])][category] += value

    modules: dict[str, dict[str, dict[str, int]]] = {}
    disagreements = []
    for name, ops in by_module.items():
        fv = Counter()
        for op, value in ops.items():
            fv[_fvcore_category(op)] += int(round(value))
        row = {}
        for category in COMPARED + ("elementwise",):
            row[category] = {"fvcore": fv[category], "dispatch": dispatch[name][category]}
            if category in COMPARED and fv[category] != dispatch[name][category]:
                disagreements.append({"module": name, "category": category, **row[category]})
        modules[name] = row
    return {
        "modules": modules, "agree": not disagreements, "disagreements": disagreements,
        "fvcore_unsupported": dict(analysis.unsupported_ops()),
    }
