"""Hardware energy profiles: each constant stored with its source (shared/specs/profiler.md 1-3, 6.7).

Three energy models, chosen by `kind`:

* "cmos" (per-operation ALU energy, Horowitz 45 nm):
  E = MACs * E_MAC + ACs * E_AC + other FLOPs * E_FLOP. Neuron dynamics run as ordinary ops and
  are already inside the FLOPs. ALU energy only: no SRAM/DRAM traffic, no static power.
* "neuromorphic" (event-driven chips): every synaptic operation outside the spiking neurons (AC,
  MAC, and any other FLOP, each mapped to one synaptic op) costs E_SOP; each neuron update costs
  E_active when the neuron spikes and E_inactive otherwise; each spike adds E_spike (routing).
* "gpu" (dense kernels do not skip zeros): E = dense FLOPs * TDP / peak FLOP/s, where dense FLOPs
  = 2 * dense MACs (ACs at their dense cost) + other FLOPs. A lower bound: it assumes the GPU runs
  at peak throughput.

A plugin adds a profile with `register_hardware(register)`: `register(HardwareProfile(...))`, or a
subclass that overrides `energy()` and `formula()` for another model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PJ = 1e-12

KINDS = {
    "cmos": ("mac_pj", "ac_pj", "flop_pj"),
    "neuromorphic": ("sop_pj", "neuron_update_active_pj", "neuron_update_inactive_pj", "spike_pj"),
    "gpu": ("tdp_w", "peak_tflops"),
}


@dataclass(frozen=True)
class Constant:
    """One number of a profile, its unit, and where it comes from."""

    value: float
    unit: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit, "source": self.source}


@dataclass
class HardwareProfile:
    """An energy model for one piece of hardware. Counts in, joules out, per component."""

    name: str
    kind: str
    description: str
    constants: dict[str, Constant]
    lower_bound: bool = False
    notes: str = ""
    plugin: str = field(default="", compare=False)

    def validate(self) -> None:
        """Raise ValueError when the kind is unknown, a constant is missing or has no source."""
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"hardware profile name must be a non-empty string, got {self.name!r}")
        custom = type(self).energy is not HardwareProfile.energy
        if self.kind not in KINDS and not custom:
            raise ValueError(f"hardware profile {self.name!r}: kind must be one of {sorted(KINDS)} "
                             f"(or subclass HardwareProfile and override energy()), got {self.kind!r}")
        for key in KINDS.get(self.kind, ()):
            if key not in self.constants:
                raise ValueError(f"hardware profile {self.name!r} ({self.kind}) lacks the constant {key!r}")
        for key, constant in self.constants.items():
            if not isinstance(constant, Constant):
                raise ValueError(f"hardware profile {self.name!r}: constant {key!r} must be a Constant "
                                 f"(value, unit, source), got {constant!r}")
            if not constant.source.strip():
                raise ValueError(f"hardware profile {self.name!r}: constant {key!r} has no source")

    def value(self, key: str) -> float:
        return self.constants[key].value

    def pj_per_flop(self) -> float:
        """GPU profiles: TDP / dense peak, in pJ per FLOP (W / (TFLOP/s) = pJ / FLOP)."""
        return self.value("tdp_w") / self.value("peak_tflops")

    def energy(self, counts: dict[str, Any]) -> dict[str, float]:
        """Energy in joules per component, from the report's totals (see the module docstring)."""
        c = counts
        if self.kind == "cmos":
            return {
                "macs": c["macs"] * self.value("mac_pj") * PJ,
                "acs": c["acs"] * self.value("ac_pj") * PJ,
                "other_flops": c["other_flops"] * self.value("flop_pj") * PJ,
            }
        if self.kind == "neuromorphic":
            inside = c["neuron_internal"]
            sops = (c["macs"] + c["acs"] + c["other_flops"]) - (inside["macs"] + inside["acs"] + inside["other_flops"])
            active = c["spikes"]
            inactive = c["neuron_updates"] - active
            return {
                "synaptic_ops": sops * self.value("sop_pj") * PJ,
                "neuron_updates_active": active * self.value("neuron_update_active_pj") * PJ,
                "neuron_updates_inactive": inactive * self.value("neuron_update_inactive_pj") * PJ,
                "spikes": c["spikes"] * self.value("spike_pj") * PJ,
            }
        if self.kind == "gpu":
            return {"dense_flops": c["dense_flops"] * self.pj_per_flop() * PJ}
        raise ValueError(f"hardware profile {self.name!r}: no energy model for kind {self.kind!r}")

    def formula(self) -> str:
        if self.kind == "cmos":
            return "E = MACs*mac_pj + ACs*ac_pj + other_FLOPs*flop_pj"
        if self.kind == "neuromorphic":
            return ("E = SOPs*sop_pj + active*neuron_update_active_pj + inactive*neuron_update_inactive_pj "
                    "+ spikes*spike_pj; SOPs = MACs + ACs + other FLOPs outside spiking neurons, "
                    "active = neuron updates that spiked, inactive = the rest")
        if self.kind == "gpu":
            return ("E = dense_FLOPs * tdp_w / peak_tflops (pJ/FLOP); dense_FLOPs = 2*dense_MACs + "
                    "other FLOPs (zeros are not skipped); lower bound: peak throughput at TDP")
        return "see the profile's energy() method"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "description": self.description, "formula": self.formula(),
            "lower_bound": self.lower_bound, "notes": self.notes, "plugin": self.plugin,
            "constants": {k: v.to_dict() for k, v in self.constants.items()},
        }


# ---- built-in profiles --------------------------------------------------------------------------
HOROWITZ = "Horowitz, ISSCC 2014, 45 nm 0.9 V"
_FP32 = f"{HOROWITZ}: fp32 add 0.9 pJ, mult 3.7 pJ (as quoted in PMC8934428 Table 3)"
_FP16 = f"{HOROWITZ}: fp16 add 0.4 pJ, mult 1.1 pJ (spikingjelly SimpleEnergyCostConfig.fp16)"
_INT8 = f"{HOROWITZ}: int8 add 0.03 pJ, mult 0.2 pJ (spikingjelly SimpleEnergyCostConfig.int8)"
_FLOP_RULE = ("convention: a FLOP outside a MAC is charged the mean of one add and one mult "
              "(= E_MAC / 2, since 1 MAC = 2 FLOPs)")
_DAVIES = "Davies et al., Loihi, IEEE Micro 38(1), 2018, Table 2 (pre-silicon SDF+SPICE)"
_MERROLLA = "Merolla et al., Science 345:668, 2014"
_A100 = "NVIDIA A100 SXM4 datasheet via glennklockwood.com processors/A100"
_H100 = "NVIDIA H100 SXM5 via glennklockwood.com processors/h100"


def _cmos(name: str, mac: float, ac: float, source: str, precision: str) -> HardwareProfile:
    return HardwareProfile(
        name=name, kind="cmos",
        description=f"45 nm CMOS ALU energy, {precision} (Horowitz 2014); ALU only, no memory traffic",
        constants={
            "mac_pj": Constant(mac, "pJ/MAC", f"{source}; E_MAC = mult + add"),
            "ac_pj": Constant(ac, "pJ/AC", f"{source}; E_AC = one add"),
            "flop_pj": Constant(mac / 2, "pJ/FLOP", f"{source}; {_FLOP_RULE}"),
        },
        notes="Memory is not charged; once data movement is counted, SNN savings shrink "
              "(Yan et al., arXiv 2409.08290).",
    )


def _gpu(name: str, tdp: float, peak: float, tdp_source: str, peak_source: str, precision: str) -> HardwareProfile:
    return HardwareProfile(
        name=name, kind="gpu", lower_bound=True,
        description=f"{name.split('-')[0].upper()} at TDP and dense {precision} peak: pJ/FLOP = TDP / peak "
                    f"({tdp / peak:.2f} pJ/FLOP), a lower bound",
        constants={
            "tdp_w": Constant(tdp, "W", tdp_source),
            "peak_tflops": Constant(peak, "TFLOP/s", peak_source),
        },
        notes="Dense GPU kernels do not skip zeros: spikes save nothing here. Measure with NVML on a "
              "GPU (zoo.profile does when the model is on CUDA); TDP is a poor proxy (ML.ENERGY).",
    )


def builtin_profiles() -> list[HardwareProfile]:
    """The spec's profiles: 45 nm fp32/fp16/int8, Loihi, TrueNorth, A100 and H100 (fp32, bf16)."""
    return [
        _cmos("45nm-fp32", 4.6, 0.9, _FP32, "fp32"),
        _cmos("45nm-fp16", 1.5, 0.4, _FP16, "fp16"),
        _cmos("45nm-int8", 0.23, 0.03, _INT8, "int8"),
        HardwareProfile(
            name="loihi", kind="neuromorphic",
            description="Intel Loihi (14 nm): energy per synaptic spike op and per neuron update",
            constants={
                "sop_pj": Constant(23.6, "pJ/SOP", f"{_DAVIES}: minimum energy per synaptic spike op"),
                "neuron_update_active_pj": Constant(81.0, "pJ/update", f"{_DAVIES}: neuron update, active"),
                "neuron_update_inactive_pj": Constant(52.0, "pJ/update", f"{_DAVIES}: neuron update, inactive"),
                "spike_pj": Constant(1.7, "pJ/spike", f"{_DAVIES}: within-tile spike energy"),
            },
            notes="Dense MACs and other FLOPs (FFT, elementwise) outside the neurons are mapped to one "
                  "synaptic op each; Loihi has no FFT, so an FFT-mode model is charged as if its "
                  "arithmetic ran as synaptic ops (the recurrent form is what such chips run). "
                  "'Active' = neuron updates that spiked.",
        ),
        HardwareProfile(
            name="truenorth", kind="neuromorphic",
            description="IBM TrueNorth (28 nm): 26 pJ per synaptic event, all-in",
            constants={
                "sop_pj": Constant(26.0, "pJ/SOP", f"{_MERROLLA}: 26 pJ per synaptic event, total chip "
                                                   "energy at 0.775 V, 20 Hz, 128 active synapses"),
                "neuron_update_active_pj": Constant(0.0, "pJ/update", f"{_MERROLLA}: included in the 26 pJ "
                                                                      "all-in figure"),
                "neuron_update_inactive_pj": Constant(0.0, "pJ/update", f"{_MERROLLA}: included in the 26 pJ "
                                                                        "all-in figure"),
                "spike_pj": Constant(2.3, "pJ/spike", "Akopyan et al., IEEE TCAD 34(10), 2015: spike hop "
                                                      "between cores 72 fJ/bit x 32 bits"),
            },
            notes="Dense MACs and other FLOPs are mapped to one synaptic event each (see loihi).",
        ),
        _gpu("a100", 400.0, 19.5, f"{_A100}: TDP 400 W", f"{_A100}: dense FP32 19.5 TFLOP/s", "FP32"),
        _gpu("a100-bf16", 400.0, 312.0, f"{_A100}: TDP 400 W", f"{_A100}: dense BF16 tensor 312 TFLOP/s", "BF16"),
        _gpu("h100", 700.0, 66.9, f"{_H100}: TDP 700 W", f"{_H100}: dense FP32 66.9 TFLOP/s", "FP32"),
        _gpu("h100-bf16", 700.0, 989.4, f"{_H100}: TDP 700 W",
             f"{_H100}: dense BF16 tensor 989.4 TFLOP/s (528 TCs x 1024 FLOP/clk x 1.83 GHz)", "BF16"),
    ]
