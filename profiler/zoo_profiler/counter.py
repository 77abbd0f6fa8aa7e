"""The counter: a TorchDispatchMode that prices every aten call, plus a ModuleTracker for layers.

Because it works at the aten level it sees functionals, einsum (as bmm), FFTs and plugin modules
alike. Each call is charged to the innermost module running it. Modules with the class attribute
`spiking_neuron = True` are watched by forward hooks: one neuron update per output element, the
output's non-zeros are its spikes; `stochastic = True` samplers also report the mean of their
first input (the firing probability).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.module_tracker import ModuleTracker

from zoo_profiler.rules import Cost, OpCall, Rule, is_spike_tensor, lookup

COST_KEYS = ("macs", "acs", "other_flops", "dense_macs", "spike_elements", "spike_nonzeros")


def _add(acc: dict[str, int], cost: Cost) -> None:
    acc["macs"] += cost.macs
    acc["acs"] += cost.acs
    acc["other_flops"] += cost.other_flops
    acc["dense_macs"] += cost.dense()
    acc["spike_elements"] += cost.spike_elements
    acc["spike_nonzeros"] += cost.spike_nonzeros


def _zero() -> dict[str, int]:
    return dict.fromkeys(COST_KEYS, 0)


@dataclass
class NeuronStats:
    updates: int = 0  # output elements (one neuron update each)
    spikes: int = 0  # non-zero outputs
    calls: int = 0
    non_spike_calls: int = 0  # outputs with values outside {0, 1, -1}: the model breaks the convention
    stochastic: bool = False
    probability_sum: float = 0.0
    probability_elements: int = 0


@dataclass
class Counts:
    """Everything one counted forward pass produced; `report.build` turns it into a Report."""

    # (module fqn, op name) -> cost sums, charged to the innermost running module ("" = the root)
    module_ops: dict[tuple[str, str], dict[str, int]] = field(default_factory=lambda: defaultdict(_zero))
    op_calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    uncounted: dict[str, dict[str, Any]] = field(default_factory=dict)
    neurons: dict[str, NeuronStats] = field(default_factory=dict)
    neuron_internal: dict[str, int] = field(default_factory=_zero)  # ops run inside spiking neurons


class OpCounter(TorchDispatchMode):
    """Prices each aten call with `rules`; use through `count(model, inputs, rules)`."""

    def __init__(self, rules: dict[str, Rule], tracker: ModuleTracker, root_name: str, counts: Counts):
        super().__init__()
        self.rules = rules
        self.tracker = tracker
        self.root_prefix = root_name + "."
        self.root_name = root_name
        self.counts = counts
        self.neuron_depth = 0  # > 0 while a spiking neuron module runs

    def current_module(self) -> str:
        """fqn of the innermost running module (the longest name on the tracker's path)."""
        name = max(self.tracker.parents, key=len)
        if name.startswith(self.root_prefix):
            return name[len(self.root_prefix):]
        return "" if name in (self.root_name, "Global") else name

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name, rule = lookup(self.rules, func)
        module = self.current_module()
        cost, error = None, None
        if rule is not None:
            try:
                cost = rule(OpCall(func, args, kwargs, out))
            except Exception as exc:  # noqa: BLE001 - a broken rule must not stop the profile
                error = f"rule {getattr(rule, '__name__', rule)!r} failed: {type(exc).__name__}: {exc}"
        self.counts.op_calls[name] += 1
        if cost is None:
            entry = self.counts.uncounted.setdefault(name, {"calls": 0, "modules": set()})
            entry["calls"] += 1
            entry["modules"].add(module)
            if error:
                entry["error"] = error
        else:
            _add(self.counts.module_ops[(module, name)], cost)
            if self.neuron_depth:
                _add(self.counts.neuron_internal, cost)
        return out


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for v in value:
            t = _first_tensor(v)
            if t is not None:
                return t
    if isinstance(value, dict):
        return _first_tensor(list(value.values()))
    return None


def _neuron_hooks(model: nn.Module, counter: OpCounter) -> list:
    """Forward hooks on every `spiking_neuron` module; the outermost one of a nest is counted."""
    handles = []
    counts = counter.counts
    for fqn, module in model.named_modules():
        if getattr(module, "spiking_neuron", False) is not True:
            continue
        stats = counts.neurons.setdefault(fqn, NeuronStats(stochastic=getattr(module, "stochastic", False) is True))

        def pre(mod, args, kwargs, stats=stats):
            counter.neuron_depth += 1
            if counter.neuron_depth == 1 and stats.stochastic:
                p = _first_tensor(args) if args else _first_tensor(kwargs)
                if p is not None and p.numel():
                    with torch.no_grad():
                        stats.probability_sum += float(p.detach().double().sum())
                    stats.probability_elements += p.numel()

        def post(mod, args, kwargs, output, stats=stats):
            counter.neuron_depth -= 1
            if counter.neuron_depth:
                return
            s = _first_tensor(output)
            if s is None:
                return
            stats.calls += 1
            stats.updates += s.numel()
            stats.spikes += int((s != 0).sum())
            if not is_spike_tensor(s):
                stats.non_spike_calls += 1

        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(module.register_forward_hook(post, with_kwargs=True))
    return handles


def run_model(model: nn.Module, inputs: Any) -> Any:
    """Call the model on one input, a tuple of positional inputs, or a dict of keyword inputs."""
    if isinstance(inputs, tuple):
        return model(*inputs)
    if isinstance(inputs, dict):
        return model(**inputs)
    return model(inputs)


def count(model: nn.Module, inputs: Any, rules: dict[str, Rule]) -> tuple[Counts, Any]:
    """Run one forward pass of `model` on `inputs` under the counter; returns (counts, output).

    The caller chooses no_grad/eval; hooks are removed even if the forward raises.
    """
    counts = Counts()
    tracker = ModuleTracker()
    counter = OpCounter(rules, tracker, type(model).__name__, counts)
    handles = _neuron_hooks(model, counter)
    try:
        with tracker, counter:
            output = run_model(model, inputs)
    finally:
        for h in handles:
            h.remove()
    for entry in counts.uncounted.values():
        entry["modules"] = sorted(entry["modules"])
    return counts, output
