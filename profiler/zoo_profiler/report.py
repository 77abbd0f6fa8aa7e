"""The profile report: stable JSON (`to_dict`), a rich terminal table, and a PNG plot."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import torch.nn as nn

from zoo_profiler.counter import Counts
from zoo_profiler.hardware import HardwareProfile
from zoo_profiler.rules import CATEGORY

FORMAT = "spikezoo-profile"
VERSION = 1

CONVENTIONS = {
    "macs": "real multiply-accumulates of contractions with no binary operand (complex MAC = 4)",
    "acs": "accumulate-only ops: a contraction operand is binary ({0,1} or {-1,0,1}); ACs = non-zeros x "
           "fan-out, exact at convolution borders; both binary: pairs of non-zeros",
    "flops": "2*macs + acs + other_flops",
    "other_flops": "elementwise 1/element (complex product 6), real FFT 2.5 n log2 n, complex FFT 5 n log2 n, "
                   "reductions 1/input element, softmax 5/element, norms as fvcore",
    "dense_macs": "MACs a dense kernel executes (ACs at their dense cost); dense_flops = 2*dense_macs + other_flops",
    "neuron_updates": "one per output element of a module with spiking_neuron = True",
    "firing_rate": "spikes / neuron updates (non-zero outputs of spiking_neuron modules)",
    "layers": "counts include submodules; 'self' holds the ops charged to the module itself",
}
SPARSITY_WEIGHTING = ("network = 1 - total spikes / total neuron updates: every neuron update weighs "
                      "the same, so layers weigh by neuron count x time steps; layer_mean = 1 - the "
                      "unweighted mean of the spiking layers' firing rates")


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _inside(name: str, prefix: str) -> bool:
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def build(counts: Counts, model: nn.Module, hardware: list[HardwareProfile], info: dict[str, Any]) -> "Report":
    """Assemble the report data from a counted forward pass."""
    modules = dict(model.named_modules())
    names = list(modules) + sorted({m for m, _ in counts.module_ops} - set(modules))
    self_costs: dict[str, dict[str, int]] = {n: dict.fromkeys(("macs", "acs", "other_flops", "dense_macs",
                                                                "spike_elements", "spike_nonzeros"), 0)
                                              for n in names}
    ops: dict[str, dict[str, Any]] = {}
    for (module, op), cost in counts.module_ops.items():
        for key, value in cost.items():
            self_costs[module][key] += value
        entry = ops.setdefault(op, {"calls": counts.op_calls[op], "category": CATEGORY.get(op, "plugin"),
                                    "macs": 0, "acs": 0, "other_flops": 0, "dense_macs": 0})
        for key in ("macs", "acs", "other_flops", "dense_macs"):
            entry[key] += cost[key]

    layers = []
    for name in names:
        module = modules.get(name)
        inc = dict.fromkeys(("macs", "acs", "other_flops", "dense_macs", "spike_elements", "spike_nonzeros"), 0)
        for other, cost in self_costs.items():
            if _inside(other, name):
                for key in inc:
                    inc[key] += cost[key]
        neurons = [s for n, s in counts.neurons.items() if _inside(n, name)]
        updates = sum(s.updates for s in neurons)
        spikes = sum(s.spikes for s in neurons)
        p_sum = sum(s.probability_sum for s in neurons if s.stochastic)
        p_n = sum(s.probability_elements for s in neurons if s.stochastic)
        own = self_costs[name]
        layers.append({
            "name": name,
            "type": type(module).__name__ if module is not None else "?",
            "depth": 0 if name == "" else name.count(".") + 1,
            "spiking_neuron": name in counts.neurons,
            "stochastic": bool(name in counts.neurons and counts.neurons[name].stochastic),
            "macs": inc["macs"], "acs": inc["acs"],
            "flops": 2 * inc["macs"] + inc["acs"] + inc["other_flops"],
            "neuron_updates": updates,
            "firing_rate": _ratio(spikes, updates),
            "spikes": spikes,
            "other_flops": inc["other_flops"], "dense_macs": inc["dense_macs"],
            "input_spike_density": _ratio(inc["spike_nonzeros"], inc["spike_elements"]),
            "probability": _ratio(p_sum, p_n),
            "self": {"macs": own["macs"], "acs": own["acs"],
                     "flops": 2 * own["macs"] + own["acs"] + own["other_flops"],
                     "other_flops": own["other_flops"], "dense_macs": own["dense_macs"]},
        })

    total = {k: sum(c[k] for c in self_costs.values()) for k in ("macs", "acs", "other_flops", "dense_macs",
                                                                  "spike_elements", "spike_nonzeros")}
    updates = sum(s.updates for s in counts.neurons.values())
    spikes = sum(s.spikes for s in counts.neurons.values())
    stochastic = [s for s in counts.neurons.values() if s.stochastic]
    p_n = sum(s.probability_elements for s in stochastic)
    inside = counts.neuron_internal
    totals = {
        "macs": total["macs"], "acs": total["acs"],
        "flops": 2 * total["macs"] + total["acs"] + total["other_flops"],
        "neuron_updates": updates,
        "other_flops": total["other_flops"], "dense_macs": total["dense_macs"],
        "dense_flops": 2 * total["dense_macs"] + total["other_flops"],
        "spikes": spikes, "firing_rate": _ratio(spikes, updates),
        "input_spike_density": _ratio(total["spike_nonzeros"], total["spike_elements"]),
        "probability_mean": _ratio(sum(s.probability_sum for s in stochastic), p_n),
        "neuron_internal": {"macs": inside["macs"], "acs": inside["acs"], "other_flops": inside["other_flops"]},
    }
    rates = [s.spikes / s.updates for s in counts.neurons.values() if s.updates]
    sparsity = {
        "network": None if not updates else 1 - spikes / updates,
        "layer_mean": None if not rates else 1 - sum(rates) / len(rates),
        "spiking_layers": len(rates),
        "weighting": SPARSITY_WEIGHTING,
    }
    warnings = list(info.pop("warnings", []))
    for name, s in counts.neurons.items():
        if s.non_spike_calls:
            warnings.append(f"module {name!r} is marked spiking_neuron but returned values outside "
                            f"{{0, 1, -1}} in {s.non_spike_calls} call(s); its rate counts non-zeros")
    if counts.uncounted:
        warnings.append("ops without a cost rule (not in the totals): " + ", ".join(
            f"{op} x{e['calls']}" for op, e in sorted(counts.uncounted.items())))
    energy_breakdown = {h.name: h.energy(totals) for h in hardware}
    data = {
        "format": FORMAT, "version": VERSION,
        **info,
        "conventions": dict(CONVENTIONS),
        "totals": totals,
        "sparsity": sparsity,
        "layers": layers,
        "ops": dict(sorted(ops.items())),
        "uncounted": {op: dict(e) for op, e in sorted(counts.uncounted.items())},
        "hardware": {h.name: h.to_dict() for h in hardware},
        "energy_j": {name: sum(parts.values()) for name, parts in energy_breakdown.items()},
        "energy_breakdown_j": energy_breakdown,
        "measured": None,
        "warnings": warnings,
    }
    return Report(data)


# ---- formatting ---------------------------------------------------------------------------------
def human(n: float | None, unit: str = "") -> str:
    """1234567 -> '1.23M'."""
    if n is None:
        return "-"
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= factor:
            return f"{n / factor:.3g}{suffix}{unit}"
    return f"{n:.3g}{unit}" if isinstance(n, float) else f"{n}{unit}"


def joules(e: float | None) -> str:
    if e is None:
        return "-"
    for factor, suffix in ((1, "J"), (1e-3, "mJ"), (1e-6, "µJ"), (1e-9, "nJ"), (1e-12, "pJ")):
        if abs(e) >= factor:
            return f"{e / factor:.3g} {suffix}"
    return f"{e:.3g} J"


def percent(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


class Report:
    """A profile: `to_dict()` (stable JSON), `to_json()`, `table()`, `print()`, `plot(path)`."""

    def __init__(self, data: dict[str, Any]):
        self._data = data

    # ---- data ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the report as plain JSON types (keys documented in `conventions`)."""
        return copy.deepcopy(self._data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Report":
        """Rebuild a report from `to_dict()` output. Raises ValueError for another format/version."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a spikezoo profile (format {data.get('format')!r}, expected {FORMAT!r})")
        if data.get("version", 0) > VERSION:
            raise ValueError(f"profile version {data['version']} is newer than this spikezoo reads ({VERSION})")
        return cls(copy.deepcopy(data))

    def to_json(self, path: str | os.PathLike | None = None, indent: int = 2) -> str:
        """The JSON text; also written to `path` when given."""
        text = json.dumps(self._data, indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "Report":
        return cls.from_dict(json.loads(Path(path).read_text()))

    @property
    def totals(self) -> dict[str, Any]:
        return self._data["totals"]

    @property
    def layers(self) -> list[dict[str, Any]]:
        return self._data["layers"]

    def layer(self, name: str) -> dict[str, Any]:
        """The entry of the module `name` ("" is the whole model). Raises KeyError if absent."""
        for entry in self._data["layers"]:
            if entry["name"] == name:
                return entry
        raise KeyError(f"no module {name!r} in this profile")

    @property
    def energy_j(self) -> dict[str, float]:
        return self._data["energy_j"]

    @property
    def uncounted(self) -> dict[str, dict[str, Any]]:
        return self._data["uncounted"]

    @property
    def sparsity(self) -> dict[str, Any]:
        return self._data["sparsity"]

    def __repr__(self) -> str:
        t = self.totals
        return (f"Report({self._data.get('model', {}).get('name', '?')}: MACs={human(t['macs'])}, "
                f"ACs={human(t['acs'])}, FLOPs={human(t['flops'])}, neuron updates={human(t['neuron_updates'])}, "
                f"firing rate={percent(t['firing_rate'])})")

    # ---- terminal -----------------------------------------------------------------------------
    def table(self, max_depth: int = 3):
        """A rich renderable: per-module counts, totals, sparsity, energy, uncounted ops."""
        from rich.console import Group
        from rich.table import Table

        d = self._data
        model = d.get("model", {})
        title = f"{model.get('name', '')} input {d.get('input', {}).get('shape', '')}"
        layers = Table("module", "type", "MACs", "ACs", "FLOPs", "neuron upd.", "firing rate",
                       title=f"profile: {title}", title_justify="left")
        for e in d["layers"]:
            if e["depth"] > max_depth or not (e["flops"] or e["neuron_updates"]):
                continue
            label = "  " * e["depth"] + (e["name"].rsplit(".", 1)[-1] if e["name"] else "(model)")
            layers.add_row(label, e["type"], human(e["macs"]), human(e["acs"]), human(e["flops"]),
                           human(e["neuron_updates"]), percent(e["firing_rate"]))
        t, s = d["totals"], d["sparsity"]
        summary = Table("total", "value", title="totals", title_justify="left")
        for key in ("macs", "acs", "other_flops", "flops", "dense_macs", "dense_flops", "neuron_updates", "spikes"):
            summary.add_row(key, f"{t[key]:,}")
        summary.add_row("firing rate", percent(t["firing_rate"]))
        summary.add_row("network sparsity", percent(s["network"]))
        if t["probability_mean"] is not None:
            summary.add_row("mean firing probability", f"{t['probability_mean']:.4f}")
        energy = Table("hardware", "energy / forward", "constants", title="energy", title_justify="left")
        formulas: dict[str, str] = {}
        for name, e in d["energy_j"].items():
            hw = d["hardware"][name]
            constants = ", ".join(f"{k.removesuffix('_pj')} {c['value']:g} {c['unit']}"
                                  for k, c in hw["constants"].items())
            energy.add_row(name + (" (lower bound)" if hw["lower_bound"] else ""), joules(e), constants)
            formulas.setdefault(hw["formula"], hw["kind"])
        parts = [layers, summary, energy, *(f"{kind}: {f}" for f, kind in formulas.items())]
        if d.get("measured") and d["measured"].get("energy_j") is not None:
            m = d["measured"]
            parts.append(f"measured (NVML, {m['device']}): {joules(m['energy_j'])} per forward, "
                         f"{joules(m['adjusted_energy_j'])} above idle, over {m['forwards']} forwards")
        if d["uncounted"]:
            un = Table("uncounted op", "calls", "modules", title="ops without a cost rule", title_justify="left")
            for op, e in d["uncounted"].items():
                un.add_row(op, str(e["calls"]), ", ".join(m or "(model)" for m in e["modules"]))
            parts.append(un)
        parts.append(f"sparsity weighting: {s['weighting']}")
        return Group(*parts)

    def __rich__(self):
        return self.table()

    def print(self, console=None, max_depth: int = 3) -> None:
        from rich.console import Console

        (console or Console()).print(self.table(max_depth))

    # ---- plot ---------------------------------------------------------------------------------
    def plot(self, path: str | os.PathLike) -> Path:
        """Write a PNG: firing rate per spiking layer and energy per hardware profile (log scale)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        d = self._data
        spiking = [e for e in d["layers"] if e["spiking_neuron"] and e["firing_rate"] is not None]
        energies = dict(d["energy_j"])
        if d.get("measured") and d["measured"].get("energy_j") is not None:
            energies[f"measured ({d['measured']['device']})"] = d["measured"]["energy_j"]
        height = max(4.0, 0.3 * max(len(spiking), len(energies)) + 1.5)
        fig = Figure(figsize=(12, height))
        FigureCanvasAgg(fig)
        ax_rate, ax_energy = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
        if spiking:
            names = [e["name"] for e in spiking]
            ax_rate.barh(range(len(spiking)), [e["firing_rate"] for e in spiking], color="tab:orange")
            ax_rate.set_yticks(range(len(spiking)), names, fontsize=8)
            ax_rate.invert_yaxis()
            ax_rate.set_xlabel("firing rate (spikes / neuron update)")
            ax_rate.set_xlim(0, max(1e-3, max(e["firing_rate"] for e in spiking)) * 1.1)
        else:
            ax_rate.text(0.5, 0.5, "no spiking_neuron modules\n(dense model)", ha="center", va="center")
            ax_rate.set_axis_off()
        rate = d["totals"]["firing_rate"]
        ax_rate.set_title(f"firing rate per layer (network sparsity {percent(d['sparsity']['network'])})"
                          if rate is not None else "firing rate per layer")
        names = list(energies)
        if names:
            values = [max(energies[n], 1e-30) for n in names]
            bounds = [d["hardware"].get(n, {}).get("lower_bound", False) for n in names]
            bars = ax_energy.barh(range(len(names)), values,
                                  color=["tab:gray" if b else "tab:blue" for b in bounds])
            for bar, bound in zip(bars, bounds):
                if bound:
                    bar.set_hatch("//")
            ax_energy.set_yticks(range(len(names)), names, fontsize=8)
            ax_energy.invert_yaxis()
            ax_energy.set_xscale("log")
            ax_energy.set_xlim(min(values) / 10, max(values) * 10)
            for i, value in enumerate(values):
                ax_energy.text(value, i, " " + joules(value), va="center", fontsize=8)
            ax_energy.set_xlabel("energy per forward pass (J); hatched = lower bound")
        else:
            ax_energy.text(0.5, 0.5, "no hardware profile selected", ha="center", va="center")
            ax_energy.set_axis_off()
        ax_energy.set_title("energy per hardware profile")
        fig.suptitle(f"{d.get('model', {}).get('name', '')}: FLOPs {human(d['totals']['flops'])}, "
                     f"ACs {human(d['totals']['acs'])}, MACs {human(d['totals']['macs'])}")
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, format="png", dpi=100)
        return path

