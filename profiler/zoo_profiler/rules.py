"""Cost rules for aten operators: what one call of an op costs, from its actual arguments.

Counting conventions (shared/specs/profiler.md sections 5 and 6):

* MACs: real multiply-accumulates of contractions (mm, bmm, convolution, ...). A complex MAC is
  4 real MACs (4 multiplies, 2 adds for the product, 2 for the accumulation).
* ACs: when an operand of a contraction is binary (every value in {0, 1}, or {-1, 0, 1} for
  ternary spikes) the multiplies disappear: ACs = non-zeros x fan-out, i.e. the number of
  (non-zero input, output) edges, exact at convolution borders (padding). When both operands are
  binary, only pairs of non-zeros count (NeuroBench's convention).
* other FLOPs: everything outside MACs/ACs. Elementwise ops 1 FLOP per output element (an
  elementary function such as exp or sigmoid counts as one); on complex values a complex x complex
  product is 6 FLOPs (4 mul + 2 add), complex / complex 11, other complex elementwise ops 2 (one per
  real component). A real FFT of length n is 2.5 n log2 n FLOPs, a complex one 5 n log2 n (benchFFT's
  nominal convention; the 1/n scaling is not charged). Reductions 1 FLOP per input element; softmax
  5 per element; norms follow fvcore (4 per element, 5 with affine; eval batch norm 1, 2 with
  affine) so that the fvcore cross-check can compare them.
* dense MACs: what a dense kernel (a GPU) executes, zeros included: for an AC op, its dense count.

A rule is `rule(call: OpCall) -> Cost | None`; None means "this call cannot be counted" and puts the
op under `uncounted`. Ops with no rule at all are listed as uncounted too, never silently zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

aten = torch.ops.aten


@dataclass
class Cost:
    """The cost of one op call. All counts are integers."""

    macs: int = 0  # dense real multiply-accumulates
    acs: int = 0  # accumulate-only ops with a binary operand
    other_flops: int = 0  # FLOPs outside MAC/AC ops (elementwise, FFT, reductions, norms)
    dense_macs: int | None = None  # MACs a dense kernel performs; None means `macs`
    spike_elements: int = 0  # elements of the binary operands that made ACs
    spike_nonzeros: int = 0  # their non-zeros (input spike density = nonzeros / elements)

    def dense(self) -> int:
        return self.macs if self.dense_macs is None else self.dense_macs


@dataclass
class OpCall:
    """One call of an aten op as a rule sees it: the op, its arguments and its output."""

    func: Any  # torch._ops.OpOverload
    args: tuple
    kwargs: dict
    out: Any
    _bound: dict | None = field(default=None, repr=False)

    def arg(self, name: str) -> Any:
        """An argument by its schema name (positional or keyword, else its default)."""
        if self._bound is None:
            bound = {}
            for i, a in enumerate(self.func._schema.arguments):
                if i < len(self.args):
                    bound[a.name] = self.args[i]
                elif a.name in self.kwargs:
                    bound[a.name] = self.kwargs[a.name]
                else:
                    bound[a.name] = a.default_value if a.has_default_value() else None
            self._bound = bound
        return self._bound[name]

    def tensors(self) -> list[torch.Tensor]:
        return [a for a in self.args if isinstance(a, torch.Tensor)]

    def out_numel(self) -> int:
        out = self.out[0] if isinstance(self.out, (tuple, list)) else self.out
        return out.numel() if isinstance(out, torch.Tensor) else 0


Rule = Callable[[OpCall], "Cost | None"]


# ---- spikes -------------------------------------------------------------------------------------
def is_spike_tensor(t: Any) -> bool:
    """True when every value of the real tensor `t` is 0, 1 or -1 (binary or ternary spikes)."""
    if not isinstance(t, torch.Tensor) or t.is_complex() or t.dtype == torch.bool:
        return False
    if t.numel() == 0:
        return False
    return bool(((t == 0) | (t.abs() == 1)).all())


# ---- contractions -------------------------------------------------------------------------------
def matmul_cost(a: torch.Tensor, b: torch.Tensor) -> Cost:
    """(..., m, k) @ (..., k, n) with equal batch dims: dense MACs, or ACs for a binary operand.

    ACs = sum over the contracted index p of (non-zeros in column p of a) x (non-zeros in row p of
    b), where a dense operand counts all its entries: nnz(a) x n when only a is binary.
    """
    m, k = a.shape[-2], a.shape[-1]
    n = b.shape[-1]
    batch = math.prod(a.shape[:-2])
    dense = batch * m * k * n
    if a.is_complex() or b.is_complex():
        return Cost(macs=4 * dense)
    a_spk, b_spk = is_spike_tensor(a), is_spike_tensor(b)
    if not (a_spk or b_spk):
        return Cost(macs=dense)
    col_a = (a != 0).sum(-2) if a_spk else m  # (..., k) non-zeros per contracted index
    row_b = (b != 0).sum(-1) if b_spk else n  # (..., k)
    if a_spk and b_spk:
        acs = int((col_a * row_b).sum())
    elif a_spk:
        acs = int(col_a.sum()) * n
    else:
        acs = int(row_b.sum()) * m
    elements = (a.numel() if a_spk else 0) + (b.numel() if b_spk else 0)
    nonzeros = (int((a != 0).sum()) if a_spk else 0) + (int((b != 0).sum()) if b_spk else 0)
    return Cost(acs=acs, dense_macs=dense, spike_elements=elements, spike_nonzeros=nonzeros)


def _with_bias(cost: Cost, out_numel: int) -> Cost:
    cost.other_flops += out_numel  # one add per output element
    return cost


def rule_mm(call: OpCall) -> Cost:
    return matmul_cost(call.arg("self"), call.arg("mat2"))


def rule_addmm(call: OpCall) -> Cost:
    return _with_bias(matmul_cost(call.arg("mat1"), call.arg("mat2")), call.out_numel())


def rule_bmm(call: OpCall) -> Cost:
    return matmul_cost(call.arg("self"), call.arg("mat2"))


def rule_baddbmm(call: OpCall) -> Cost:
    return _with_bias(matmul_cost(call.arg("batch1"), call.arg("batch2")), call.out_numel())


def rule_mv(call: OpCall) -> Cost:
    return matmul_cost(call.arg("self"), call.arg("vec").unsqueeze(-1))


def rule_addmv(call: OpCall) -> Cost:
    return _with_bias(matmul_cost(call.arg("mat"), call.arg("vec").unsqueeze(-1)), call.out_numel())


def rule_dot(call: OpCall) -> Cost:
    return matmul_cost(call.arg("self").unsqueeze(0), call.arg("tensor").unsqueeze(-1))


def _conv_edges(x: torch.Tensor, w: torch.Tensor, x_spk: bool, w_spk: bool, stride, padding, dilation,
                transposed: bool, output_padding, groups: int) -> int:
    """Exact (non-zero input, weight, output) edges of a convolution, by convolving 0/1 masks.

    Padding positions hold no input, so border outputs get fewer edges: the count is exact.
    A dense operand is a mask of ones; when only the input is binary, one ones-filter per group is
    enough (every output channel of a group sees the same inputs).
    """
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32  # counts stay exact
    if x_spk:
        xm = (x != 0).to(dtype)
    else:
        xm = torch.ones((1,) + tuple(x.shape[1:]), dtype=dtype, device=x.device)
    out_per_group = (w.shape[1] if transposed else w.shape[0] // groups)
    if w_spk:
        wm, scale = (w != 0).to(dtype), 1
    elif transposed:  # weight (Cin, Cout/groups, *k)
        wm, scale = torch.ones((w.shape[0], 1) + tuple(w.shape[2:]), dtype=dtype, device=w.device), out_per_group
    else:  # weight (Cout, Cin/groups, *k)
        wm, scale = torch.ones((groups,) + tuple(w.shape[1:]), dtype=dtype, device=w.device), out_per_group
    y = aten.convolution(xm, wm, None, stride, padding, dilation, transposed, output_padding, groups)
    edges = int(round(float(y.sum(dtype=torch.float64)))) * scale
    return edges if x_spk else edges * x.shape[0]


def rule_convolution(call: OpCall) -> Cost:
    x, w, bias = call.arg("input"), call.arg("weight"), call.arg("bias")
    transposed = bool(call.arg("transposed"))
    out = call.out
    spatial = x.shape[2:] if transposed else out.shape[2:]
    dense = x.shape[0] * math.prod(w.shape) * math.prod(spatial)
    if x.is_complex() or w.is_complex():
        cost = Cost(macs=4 * dense)
    else:
        x_spk, w_spk = is_spike_tensor(x), is_spike_tensor(w)
        if x_spk or w_spk:
            acs = _conv_edges(x, w, x_spk, w_spk, call.arg("stride"), call.arg("padding"), call.arg("dilation"),
                              transposed, call.arg("output_padding"), call.arg("groups"))
            elements = (x.numel() if x_spk else 0) + (w.numel() if w_spk else 0)
            nonzeros = (int((x != 0).sum()) if x_spk else 0) + (int((w != 0).sum()) if w_spk else 0)
            cost = Cost(acs=acs, dense_macs=dense, spike_elements=elements, spike_nonzeros=nonzeros)
        else:
            cost = Cost(macs=dense)
    return _with_bias(cost, out.numel()) if bias is not None else cost


def _sdpa(call: OpCall) -> Cost:
    """Fused attention = softmax(q k^T / sqrt(d)) v: two batched contractions + softmax (5/element).

    The causal mask is ignored (full square counted), as torch's FlopCounterMode does.
    """
    q, k, v = call.arg("query"), call.arg("key"), call.arg("value")
    lead = q.shape[:-2]
    qb = q.reshape(-1, q.shape[-2], q.shape[-1])  # (BH, Lq, d)
    kb = k.expand(lead + k.shape[-2:]).reshape(-1, k.shape[-2], k.shape[-1]).transpose(-1, -2)  # (BH, d, Lk)
    vb = v.expand(lead + v.shape[-2:]).reshape(-1, v.shape[-2], v.shape[-1])  # (BH, Lk, dv)
    scores = matmul_cost(qb, kb)
    bh, lq, lk = qb.shape[0], qb.shape[1], kb.shape[-1]
    n_mix = bh * lq * lk * vb.shape[-1]
    if is_spike_tensor(vb):  # the weights are a softmax, never binary; only v may be spikes
        nnz = int((vb != 0).sum())
        mix = Cost(acs=nnz * lq, dense_macs=n_mix, spike_elements=vb.numel(), spike_nonzeros=nnz)
    else:
        mix = Cost(macs=n_mix)
    return Cost(
        macs=scores.macs + mix.macs, acs=scores.acs + mix.acs, other_flops=5 * bh * lq * lk,
        dense_macs=scores.dense() + mix.dense(),
        spike_elements=scores.spike_elements + mix.spike_elements,
        spike_nonzeros=scores.spike_nonzeros + mix.spike_nonzeros,
    )


# ---- FFT ----------------------------------------------------------------------------------------
def _fft_flops(n: int, batch: int, per_n_log_n: float) -> int:
    return int(round(per_n_log_n * n * math.log2(n) * batch)) if n > 1 else 0


def rule_fft_r2c(call: OpCall) -> Cost:
    x, dims = call.arg("self"), call.arg("dim")
    n = math.prod(x.shape[d] for d in dims)
    return Cost(other_flops=_fft_flops(n, x.numel() // max(n, 1), 2.5))


def rule_fft_c2r(call: OpCall) -> Cost:
    out, dims = call.out, call.arg("dim")
    n = math.prod(out.shape[d] for d in dims)
    return Cost(other_flops=_fft_flops(n, out.numel() // max(n, 1), 2.5))


def rule_fft_c2c(call: OpCall) -> Cost:
    x, dims = call.arg("self"), call.arg("dim")
    n = math.prod(x.shape[d] for d in dims)
    return Cost(other_flops=_fft_flops(n, x.numel() // max(n, 1), 5.0))


# ---- elementwise --------------------------------------------------------------------------------
def _complex_operands(call: OpCall) -> list[bool]:
    return [isinstance(a, torch.Tensor) and a.is_complex() for a in call.args[:2]]


def rule_pointwise(call: OpCall) -> Cost:
    """1 FLOP per output element; 2 when complex values are involved (one per real component)."""
    per = 2 if any(_complex_operands(call)) else 1
    return Cost(other_flops=per * call.out_numel())


def rule_mul(call: OpCall) -> Cost:
    cplx = _complex_operands(call)
    per = 6 if all(cplx) and len(cplx) == 2 else (2 if any(cplx) else 1)
    return Cost(other_flops=per * call.out_numel())


def rule_div(call: OpCall) -> Cost:
    cplx = _complex_operands(call)
    per = 11 if len(cplx) == 2 and cplx[1] else (2 if any(cplx) else 1)
    return Cost(other_flops=per * call.out_numel())


def per_output(flops_per_element: int) -> Rule:
    def rule(call: OpCall) -> Cost:
        return Cost(other_flops=flops_per_element * call.out_numel())
    rule.__name__ = f"per_output_{flops_per_element}"
    return rule


def per_input(flops_per_element: int) -> Rule:
    def rule(call: OpCall) -> Cost:
        return Cost(other_flops=flops_per_element * call.tensors()[0].numel())
    rule.__name__ = f"per_input_{flops_per_element}"
    return rule


def zero_cost(call: OpCall) -> Cost:
    """Shape, view, copy and creation ops: no arithmetic."""
    return Cost()


# ---- norms (fvcore's per-element estimates, so the cross-check can compare them) -----------------
def _norm(call: OpCall, training: bool) -> Cost:
    x, weight = call.arg("input"), call.arg("weight")
    affine = weight is not None
    per = (5 if affine else 4) if training else (2 if affine else 1)
    return Cost(other_flops=per * x.numel())


def rule_batch_norm(call: OpCall) -> Cost:
    return _norm(call, bool(call.arg("training")))


def rule_batch_norm_eval(call: OpCall) -> Cost:
    return _norm(call, False)


def rule_layer_norm(call: OpCall) -> Cost:
    return _norm(call, True)


# ---- the table ----------------------------------------------------------------------------------
CONTRACTIONS = {
    "aten::mm": rule_mm, "aten::addmm": rule_addmm, "aten::bmm": rule_bmm, "aten::baddbmm": rule_baddbmm,
    "aten::mv": rule_mv, "aten::addmv": rule_addmv, "aten::dot": rule_dot, "aten::vdot": rule_dot,
    "aten::convolution": rule_convolution, "aten::_convolution": rule_convolution,
}
ATTENTION = {
    f"aten::{name}": _sdpa for name in (
        "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
    )
}
FFTS = {"aten::_fft_r2c": rule_fft_r2c, "aten::_fft_c2r": rule_fft_c2r, "aten::_fft_c2c": rule_fft_c2c}
NORMS = {
    "aten::native_batch_norm": rule_batch_norm, "aten::_native_batch_norm_legit": rule_batch_norm,
    "aten::_native_batch_norm_legit_no_training": rule_batch_norm_eval,
    "aten::native_layer_norm": rule_layer_norm, "aten::native_group_norm": rule_layer_norm,
}
POINTWISE_NAMES = (
    "add", "sub", "rsub", "neg", "abs", "exp", "exp2", "expm1", "log", "log1p", "log2", "log10", "sqrt",
    "rsqrt", "reciprocal", "pow", "square", "sigmoid", "tanh", "relu", "gelu", "silu", "elu", "leaky_relu",
    "hardtanh", "hardsigmoid", "hardswish", "softplus", "mish", "erf", "erfc", "sin", "cos", "tan", "atan",
    "atan2", "sinh", "cosh", "asin", "acos", "floor", "ceil", "round", "trunc", "frac", "sign", "sgn",
    "clamp", "clamp_min", "clamp_max", "maximum", "minimum", "fmax", "fmin", "where", "masked_fill", "lt",
    "le", "gt", "ge", "eq", "ne", "logical_and", "logical_or", "logical_not", "logical_xor", "bitwise_and",
    "bitwise_or", "bitwise_not", "bitwise_xor", "heaviside", "threshold", "copysign", "fmod", "remainder",
    "xlogy", "nan_to_num", "isnan", "isinf", "polar", "angle", "lerp", "addcmul", "addcdiv", "max.other",
    "min.other",
)
POINTWISE: dict[str, Rule] = {f"aten::{n}": rule_pointwise for n in POINTWISE_NAMES}
POINTWISE.update({"aten::mul": rule_mul, "aten::div": rule_div, "aten::glu": per_output(2),
                  "aten::addcmul": per_output(2), "aten::addcdiv": per_output(2), "aten::lerp": per_output(2)})
POINTWISE.update({
    "aten::index_add": lambda call: Cost(other_flops=call.arg("source").numel()),
    "aten::index_add_": lambda call: Cost(other_flops=call.arg("source").numel()),
    "aten::scatter_add": lambda call: Cost(other_flops=call.arg("src").numel()),
    "aten::scatter_add_": lambda call: Cost(other_flops=call.arg("src").numel()),
})  # scatter-adds: one add per source element
# Random number generation (stochastic spike samplers): one op per generated element (convention).
RANDOM = {f"aten::{n}": per_output(1) for n in (
    "bernoulli", "bernoulli_", "rand", "rand_like", "randn", "randn_like", "uniform_", "normal_",
    "exponential_", "randint", "randint_like", "multinomial",
)}
REDUCTIONS: dict[str, Rule] = {f"aten::{n}": per_input(1) for n in (
    "sum", "mean", "nansum", "nanmean", "amax", "amin", "max", "min", "aminmax", "prod", "argmax", "argmin",
    "any", "all", "count_nonzero", "cumsum", "cumprod", "logcumsumexp", "_adaptive_avg_pool2d",
)}
REDUCTIONS["aten::nonzero"] = per_input(1)  # one comparison per element
REDUCTIONS.update({f"aten::{n}": per_input(2) for n in ("linalg_vector_norm", "norm")})
REDUCTIONS.update({f"aten::{n}": per_input(3) for n in ("var", "std", "var_mean", "std_mean", "logsumexp")})
REDUCTIONS.update({"aten::_softmax": per_output(5), "aten::_log_softmax": per_output(5),
                   "aten::_safe_softmax": per_output(5),
                   "aten::upsample_nearest2d": per_output(1), "aten::upsample_bilinear2d": per_output(4)})
# Explicitly free: views, shape changes, copies, creation, indexing and gathers (no arithmetic).
ZERO_COST_NAMES = (
    "view", "_unsafe_view", "reshape", "_reshape_alias", "t", "transpose", "permute", "expand", "expand_as",
    "unsqueeze", "squeeze", "select", "slice", "narrow", "split", "split_with_sizes", "unbind", "chunk",
    "cat", "stack", "clone", "contiguous", "_to_copy", "copy_", "copy", "detach", "alias", "lift_fresh",
    "lift_fresh_copy", "as_strided", "view_as_real", "view_as_complex", "real", "imag", "conj", "_conj",
    "resolve_conj", "resolve_neg", "_neg_view", "complex", "empty", "empty_like", "empty_strided",
    "new_empty", "new_empty_strided", "zeros", "zeros_like", "new_zeros", "ones", "ones_like", "new_ones",
    "full", "full_like", "new_full", "scalar_tensor", "arange", "linspace", "eye", "fill_", "fill", "zero_",
    "_local_scalar_dense", "is_nonzero", "constant_pad_nd", "reflection_pad1d", "replication_pad1d",
    "flip", "roll", "repeat", "tril", "triu", "embedding", "index", "index_select", "gather",
    "masked_select", "unfold", "diagonal", "diag_embed", "index_put", "index_put_", "scatter", "one_hot",
    "_unsafe_index", "index_copy", "index_copy_", "index_fill", "index_fill_", "masked_scatter", "set_", "resize_", "squeeze_", "unsqueeze_", "t_", "transpose_", "detach_",
)
ZERO_COST: dict[str, Rule] = {f"aten::{n}": zero_cost for n in ZERO_COST_NAMES}

# Category of each built-in rule, for the per-op table and the fvcore comparison.
CATEGORY: dict[str, str] = {}
for _table, _category in ((CONTRACTIONS, "contraction"), (ATTENTION, "contraction"), (FFTS, "fft"),
                          (NORMS, "norm"), (POINTWISE, "elementwise"), (RANDOM, "random"),
                          (REDUCTIONS, "reduction"), (ZERO_COST, "zero-cost")):
    for _name in _table:
        CATEGORY[_name] = _category


def builtin_rules() -> dict[str, Rule]:
    """Every built-in rule by op name ("aten::mm" covers all overloads, "aten::max.other" one)."""
    rules: dict[str, Rule] = {}
    for table in (ZERO_COST, REDUCTIONS, RANDOM, POINTWISE, NORMS, FFTS, ATTENTION, CONTRACTIONS):
        rules.update(table)
    return rules


def op_key(op: Any) -> str:
    """The rule-table key of an op: "ns::name" for all overloads, "ns::name.overload" for one.

    Accepts an OpOverloadPacket (torch.ops.aten.mm), an OpOverload (torch.ops.aten.mm.default) or
    a string. Raises ValueError for anything else, or a string without a namespace.
    """
    if isinstance(op, torch._ops.OpOverload):
        return f"{op._schema.name}.{op._overloadname}"
    if isinstance(op, torch._ops.OpOverloadPacket):
        return op._qualified_op_name
    if isinstance(op, str):
        if "::" not in op:
            raise ValueError(f"op name {op!r} needs a namespace, like 'aten::mm' or 'mylib::spike_conv'")
        return op
    raise ValueError(f"expected an op (torch.ops.ns.name[.overload]) or 'ns::name', got {op!r}")


def lookup(rules: dict[str, Rule], func) -> tuple[str, Rule | None]:
    """(display name, rule) for an OpOverload: overload-specific rule first, then the op's."""
    name = func._schema.name
    rule = rules.get(f"{name}.{func._overloadname}") or rules.get(name)
    if rule is None and name.startswith("aten::") and torch.Tag.pointwise in func.tags:
        rule = rule_pointwise  # any other op tagged pointwise by torch: 1 FLOP per element
    return name, rule
