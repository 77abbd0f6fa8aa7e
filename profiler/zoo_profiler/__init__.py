"""spikezoo profiler plugin: MACs, accumulate-only synaptic ops, spike sparsity and energy.

    import zoo
    report = zoo.profile("s4d", length=256, hardware="45nm-fp32,loihi,h100")
    report.to_dict()["totals"]      # macs, acs, flops, neuron_updates, ...
    report.print(); report.plot("profile.png")

Counting happens at the aten level (`counter.py`, rules in `rules.py`); energy profiles with the
source of every constant are in `hardware.py`; `fvcore_check.py` is the dense cross-check.
Plugins add hardware with `register_hardware(register)` -> `register(HardwareProfile(...))` and
cost rules for their own ops with `register_op_costs(register)` -> `register("ns::op", rule)`.
"""

from __future__ import annotations

import zoo
from zoo_profiler.api import RandomWeightsWarning, profile, registered_hardware, registered_rules, select_hardware
from zoo_profiler.hardware import Constant, HardwareProfile, builtin_profiles
from zoo_profiler.report import Report
from zoo_profiler.rules import Cost, OpCall, builtin_rules, is_spike_tensor, matmul_cost

__all__ = [
    "profile", "Report", "RandomWeightsWarning", "HardwareProfile", "Constant", "Cost", "OpCall",
    "is_spike_tensor", "matmul_cost", "registered_hardware", "registered_rules", "select_hardware",
]


@zoo.hookimpl
def register_hardware(register):
    for hw in builtin_profiles():
        register(hw)


@zoo.hookimpl
def register_op_costs(register):
    for op, rule in builtin_rules().items():
        register(op, rule)
