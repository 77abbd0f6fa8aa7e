"""Profiler on the zoo's models: fvcore cross-check, every architecture, plugins, the CLI."""

import json
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.cli import main
from zoo_profiler import Constant, Cost, HardwareProfile, RandomWeightsWarning, profile
from zoo_profiler.fvcore_check import cross_check

TINY = {"d_model": 8, "n_layers": 1}


# ---- fvcore --------------------------------------------------------------------------------------
@pytest.mark.parametrize("bidirectional", [False, True])
def test_fvcore_agrees_with_the_dispatch_counter_on_s4d(bidirectional):
    model = zoo.create("s4d", d_model=8, n_layers=2, d_state=4, seq_len=16, bidirectional=bidirectional).eval()
    x = model.example_input(batch=2)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit deprecation inside fvcore
        result = cross_check(model, x)
    assert result["agree"], result["disagreements"]
    root = result["modules"][""]
    # every compared category was actually counted by both sides (no agreement on zeros)
    for category in ("contraction", "fft", "norm"):
        assert root[category]["fvcore"] > 0, category
    assert result["modules"]["blocks.1.layer.ssm.kernel"]["contraction"]["fvcore"] > 0
    # and the dispatch side is what zoo.profile reports on this dense model
    report = profile(model, x)
    assert root["contraction"]["dispatch"] == report.totals["macs"] == report.totals["dense_macs"]
    assert result["fvcore_unsupported"] == {}


def test_fvcore_counts_dense_macs_of_a_spiking_layer():
    lin = nn.Linear(6, 4).eval()
    x = (torch.rand(3, 6) < 0.5).float()
    with torch.no_grad():
        result = cross_check(lin, x)
    assert result["agree"]
    assert result["modules"][""]["contraction"]["fvcore"] == 3 * 6 * 4  # shape-only = the dense count
    assert profile(lin, x).totals["acs"] == int(x.sum()) * 4


# ---- every registered architecture ---------------------------------------------------------------
@pytest.mark.parametrize("name", zoo.list_models(pretrained=False))
def test_profile_every_architecture_tiny(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        report = profile(name, overrides=TINY, length=16)
    d = report.to_dict()
    assert json.loads(json.dumps(d)) == d
    t = d["totals"]
    assert t["flops"] == 2 * t["macs"] + t["acs"] + t["other_flops"] > 0
    for key in ("macs", "acs", "flops", "other_flops", "dense_macs"):
        assert sum(layer["self"][key] for layer in d["layers"]) == t[key]
        assert report.layer("")[key] == t[key]
    assert d["uncounted"] == {}, "a built-in architecture uses ops without a cost rule"
    model = zoo.create(name, **TINY)
    neurons = [m for m in model.modules() if getattr(m, "spiking_neuron", False) is True]
    if neurons:
        assert t["neuron_updates"] > 0 and 0 <= t["firing_rate"] <= 1
        assert d["sparsity"]["network"] == pytest.approx(1 - t["firing_rate"])
    else:
        assert t["neuron_updates"] == 0 and t["firing_rate"] is None
    if any(getattr(m, "stochastic", False) is True for m in neurons):
        assert 0 <= t["probability_mean"] <= 1
    assert set(d["energy_j"]) >= {"45nm-fp32", "loihi", "h100"}


def test_spike_ssm_wikitext103_profiles_without_weights_at_reduced_size():
    if "spike-ssm-wikitext103" not in zoo.list_models():
        pytest.skip("spike-ssm-wikitext103 is not registered")
    with pytest.warns(RandomWeightsWarning, match="spike rates"):
        report = profile("spike-ssm-wikitext103", overrides={"d_model": 64, "n_layers": 1}, length=16)
    d = report.to_dict()
    assert d["model"]["weights"] == "random" and d["uncounted"] == {}
    assert d["totals"]["neuron_updates"] > 0 and d["totals"]["acs"] > 0


def test_pretrained_name_without_weights_falls_back_with_a_warning(temp_plugin):
    class Entry:
        @zoo.hookimpl
        def register_models(self, register):
            register(zoo.ModelEntry(name="s4d-profiler-toy", architecture="s4d",
                                    config={"d_model": 8, "n_layers": 1, "d_state": 4, "seq_len": 12}))

    temp_plugin(Entry(), "profiler-toy-entry")
    with pytest.warns(RandomWeightsWarning, match="random weights"):
        report = profile("s4d-profiler-toy")
    d = report.to_dict()
    assert d["model"]["weights"] == "random" and d["model"]["name"] == "s4d-profiler-toy"
    assert d["input"]["shape"] == [1, 12, 1]  # the entry's seq_len
    assert any("random weights" in w for w in d["warnings"])


# ---- plugins -------------------------------------------------------------------------------------
class ToyChip:
    """A third-party plugin: its own hardware profile and a cost rule for an op without one."""

    @zoo.hookimpl
    def register_hardware(self, register):
        register(HardwareProfile(
            name="toy-chip", kind="cmos", description="a made-up chip for the test",
            constants={"mac_pj": Constant(2.0, "pJ/MAC", "test value"),
                       "ac_pj": Constant(0.5, "pJ/AC", "test value"),
                       "flop_pj": Constant(1.0, "pJ/FLOP", "test value")}))

    @zoo.hookimpl
    def register_op_costs(self, register):
        register("aten::sort", lambda call: Cost(other_flops=7 * call.args[0].numel()))


class Sorter(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        return torch.sort(self.lin(x), dim=-1).values


def test_plugin_hardware_profile_and_op_rule_are_used(temp_plugin):
    temp_plugin(ToyChip(), "toy-chip")
    x = torch.randn(2, 4)
    report = profile(Sorter(), x, hardware="toy-chip,45nm-fp32")
    d = report.to_dict()
    t = d["totals"]
    assert d["uncounted"] == {}
    assert d["ops"]["aten::sort"]["other_flops"] == 7 * 2 * 3
    assert d["energy_j"]["toy-chip"] == pytest.approx((t["macs"] * 2.0 + t["acs"] * 0.5 + t["other_flops"]) * 1e-12)
    assert d["hardware"]["toy-chip"]["plugin"] == "toy-chip"
    assert "toy-chip" in profile(Sorter(), x).energy_j  # hardware=None: all registered profiles


def test_a_plugin_profile_without_sources_is_reported_broken(temp_plugin):
    class Sourceless:
        @zoo.hookimpl
        def register_hardware(self, register):
            register(HardwareProfile("no-source", "gpu", "", {"tdp_w": Constant(1, "W", ""),
                                                              "peak_tflops": Constant(1, "TFLOP/s", "")}))

    temp_plugin(Sourceless(), "sourceless")
    from zoo.plugins import PluginWarning, plugin_status

    with pytest.warns(PluginWarning, match="has no source"):
        report = profile(nn.Linear(2, 2), torch.randn(1, 2))
    assert "no-source" not in report.energy_j and "loihi" in report.energy_j
    assert [s.status for s in plugin_status() if s.name == "sourceless"] == ["broken"]


# ---- CLI -----------------------------------------------------------------------------------------
def test_cli_profile_writes_json_and_png(tmp_path, capsys):
    from PIL import Image

    out, png = tmp_path / "p.json", tmp_path / "p.png"
    rc = main(["profile", "s4d", "--length", "16", "--set", "d_model=8", "--set", "n_layers=1",
               "--hardware", "loihi,h100", "--json", str(out), "--plot", str(png)])
    captured = capsys.readouterr()
    assert rc == 0
    assert "random weights" in captured.err and "energy" in captured.out
    data = json.loads(out.read_text())
    assert list(data["energy_j"]) == ["loihi", "h100"]
    assert data["input"]["shape"] == [1, 16, 1] and data["model"]["name"] == "s4d"
    with Image.open(png) as image:
        assert image.format == "PNG"


def test_cli_profile_errors_are_one_line(capsys):
    assert main(["profile", "s4d", "--hardware", "tpu"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("zoo: error: unknown hardware profile") and "\n" not in err
    assert main(["profile", "s4d", "--set", "d_modle=8", "--length", "8"]) == 1
    assert "d_modle" in capsys.readouterr().err


def test_cli_lists_hardware_with_sources(capsys):
    assert main(["profile", "--list-hardware", "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["loihi"]["constants"]["sop_pj"]["value"] == 23.6
    assert all(c["source"] for hw in data.values() for c in hw["constants"].values())


def test_zoo_cli_import_stays_light():
    code = ("import sys, zoo.cli; heavy = [m for m in ('fvcore', 'matplotlib', 'timm') if m in sys.modules]; "
            "print(heavy); assert 'profile' in zoo.cli.COMMANDS")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@torch.library.custom_op("zoo_profiler_test::twice", mutates_args=())
def _twice(x: torch.Tensor) -> torch.Tensor:
    return 2 * x


def test_plugin_rule_for_its_own_custom_op(temp_plugin):
    class Twice(nn.Module):
        def forward(self, x):
            return _twice(x)

    x = torch.randn(3, 5)
    assert profile(Twice(), x).uncounted == {"zoo_profiler_test::twice": {"calls": 1, "modules": [""]}}

    class TwicePlugin:
        @zoo.hookimpl
        def register_op_costs(self, register):
            register(torch.ops.zoo_profiler_test.twice, lambda call: Cost(other_flops=call.out_numel()))

    temp_plugin(TwicePlugin(), "twice-plugin")
    report = profile(Twice(), x)
    assert report.uncounted == {} and report.totals["other_flops"] == 15
    assert report.to_dict()["ops"]["zoo_profiler_test::twice"]["category"] == "plugin"
