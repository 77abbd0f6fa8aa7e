"""Profiler counts against hand computation, energy against the formulas, the report's outputs."""

import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
from zoo.nn import fft_conv
from zoo_profiler import HardwareProfile, Report, is_spike_tensor, profile
from zoo_profiler.hardware import builtin_profiles


# ---- toy modules --------------------------------------------------------------------------------
class Threshold(nn.Module):
    spiking_neuron = True

    def forward(self, v):
        return (v > 0.5).to(v.dtype)


class Sampler(nn.Module):
    spiking_neuron = True
    stochastic = True

    def forward(self, p):
        return torch.bernoulli(p)


class Mixed(nn.Module):
    """Dense encoder -> spikes -> Linear on spikes -> Conv1d on spikes -> stochastic sampler."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(3, 6)
        self.spike = Threshold()
        self.fc = nn.Linear(6, 4, bias=False)
        self.spike2 = Threshold()
        self.conv = nn.Conv1d(4, 5, kernel_size=3, padding=1)
        self.sampler = Sampler()

    def forward(self, x):  # (B, L, 3)
        s = self.spike(self.enc(x))  # (B, L, 6)
        s2 = self.spike2(self.fc(s))  # (B, L, 4)
        y = self.conv(s2.transpose(1, 2))  # (B, 5, L)
        return self.sampler(torch.sigmoid(y))


def fixed_spikes(shape, positions):
    x = torch.zeros(shape)
    for p in positions:
        x[p] = 1.0
    return x


# ---- spikes -------------------------------------------------------------------------------------
def test_spike_detection():
    assert is_spike_tensor(torch.tensor([0.0, 1.0, 1.0]))
    assert is_spike_tensor(torch.tensor([-1.0, 0.0, 1.0]))  # ternary
    assert not is_spike_tensor(torch.tensor([0.0, 0.5]))
    assert not is_spike_tensor(torch.tensor([0.0, 2.0]))
    assert not is_spike_tensor(torch.tensor([1.0 + 0j]))


# ---- contractions -------------------------------------------------------------------------------
def test_linear_on_binary_input_counts_nonzeros_times_fanout():
    lin = nn.Linear(6, 5)
    x = fixed_spikes((2, 3, 6), [(0, 0, 1), (0, 0, 4), (0, 2, 5), (1, 1, 0), (1, 1, 1), (1, 2, 2), (1, 2, 3)])
    r = profile(lin, x, hardware="45nm-fp32")
    t = r.totals
    assert t["acs"] == 7 * 5  # 7 non-zeros, each reaches the 5 outputs
    assert t["macs"] == 0
    assert t["dense_macs"] == 2 * 3 * 6 * 5
    assert t["other_flops"] == 2 * 3 * 5  # bias adds
    assert t["flops"] == 35 + 30
    assert t["input_spike_density"] == pytest.approx(7 / 36)


def test_linear_ternary_and_dense_inputs():
    lin = nn.Linear(4, 3, bias=False)
    ternary = torch.tensor([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0]])
    assert profile(lin, ternary).totals["acs"] == 3 * 3
    dense = torch.tensor([[0.5, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0]])
    t = profile(lin, dense).totals
    assert (t["macs"], t["acs"]) == (2 * 4 * 3, 0)


def test_matmul_with_both_operands_binary_counts_pairs_of_nonzeros():
    class Both(nn.Module):
        def forward(self, a, b):
            return a @ b

    a = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # (2, 3): column non-zeros 2, 0, 1
    b = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0]])  # (3, 2): row non-zeros 2, 2, 1
    assert profile(Both(), (a, b)).totals["acs"] == 2 * 2 + 0 * 2 + 1 * 1


def conv1d_edges_reference(x, weight_mask, stride, padding, dilation, groups):
    """Loop over outputs and taps: count (non-zero input, non-zero weight, output) edges."""
    B, Cin, L = x.shape
    Cout, cin_g, K = weight_mask.shape
    L_out = (L + 2 * padding - dilation * (K - 1) - 1) // stride + 1
    per_group = Cout // groups
    edges = 0
    for b in range(B):
        for co in range(Cout):
            g = co // per_group
            for o in range(L_out):
                for ci in range(cin_g):
                    for k in range(K):
                        t = o * stride - padding + k * dilation
                        if 0 <= t < L and x[b, g * cin_g + ci, t] != 0 and weight_mask[co, ci, k] != 0:
                            edges += 1
    return edges


def test_conv1d_on_spikes_counts_exact_edges_at_padded_borders():
    conv = nn.Conv1d(2, 3, kernel_size=3, padding=1, bias=False)
    x = fixed_spikes((1, 2, 5), [(0, 0, 0), (0, 0, 2), (0, 1, 4)])
    t = profile(conv, x).totals
    # a spike at a border position reaches 2 outputs (the third tap hits padding), inside 3
    assert t["acs"] == (2 + 3 + 2) * 3
    assert t["acs"] < 3 * 3 * 3  # the naive nnz x Cout x K overcounts the borders
    assert t["dense_macs"] == 1 * 3 * 2 * 3 * 5


@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 2, 1, 1), (2, 1, 1, 2), (1, 3, 2, 1), (3, 0, 1, 4)])
def test_conv1d_edges_match_loop_reference(stride, padding, dilation, groups):
    g = torch.Generator().manual_seed(1)
    conv = nn.Conv1d(4, 8, kernel_size=3, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x = (torch.rand(2, 4, 11, generator=g) < 0.3).float()
    ones = torch.ones(8, 4 // groups, 3)
    t = profile(conv, x).totals
    assert t["acs"] == conv1d_edges_reference(x, ones, stride, padding, dilation, groups)
    assert t["other_flops"] == conv(x).numel()  # bias adds


def test_conv1d_with_ternary_weights_on_dense_input():
    conv = nn.Conv1d(2, 2, kernel_size=3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0], [-1.0, 1.0, 1.0]]]))
    x = torch.rand(3, 2, 6) + 0.1
    t = profile(conv, x).totals
    assert t["acs"] == conv1d_edges_reference(x, conv.weight, 1, 1, 1, 1)
    assert t["macs"] == 0


def test_fft_long_convolution_follows_the_convention():
    class LongConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.k = nn.Parameter(torch.randn(3, 8))  # (H, L)

        def forward(self, u):  # (B, H, L)
            return fft_conv(u, self.k)

    B, H, L = 2, 3, 8
    n = 2 * L
    t = profile(LongConv(), torch.randn(B, H, L)).totals
    rfft_k = 2.5 * n * math.log2(n) * H
    rfft_u = 2.5 * n * math.log2(n) * B * H
    irfft = 2.5 * n * math.log2(n) * B * H
    product = 6 * B * H * (L + 1)  # complex x complex on the L+1 bins
    assert t["other_flops"] == rfft_k + rfft_u + irfft + product
    assert t["macs"] == 0 and t["acs"] == 0


def test_complex_contraction_is_four_real_macs():
    class Cmm(nn.Module):
        def forward(self, a, b):
            return torch.einsum("chn,hnl->chl", a, b)

    a = torch.randn(2, 3, 4, dtype=torch.cfloat)
    b = torch.randn(3, 4, 5, dtype=torch.cfloat)
    assert profile(Cmm(), (a, b)).totals["macs"] == 4 * 2 * 3 * 4 * 5


def test_attention_counts_two_contractions():
    class Attn(nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v)

    q, k = torch.randn(1, 2, 4, 3), torch.randn(1, 2, 6, 3)
    for dv in (3, 5):  # dv = d takes the fused CPU kernel, dv != d torch's decomposition
        r = profile(Attn(), (q, k, torch.randn(1, 2, 6, dv)))
        assert r.totals["macs"] == 2 * 4 * 6 * 3 + 2 * 4 * 6 * dv
        assert r.uncounted == {}
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in profile(Attn(), (q, k, k)).to_dict()["ops"]


# ---- neurons, the mixed model -------------------------------------------------------------------
def mixed_reference(model, x):
    """Recompute the mixed model's counts by hand from its intermediate tensors."""
    with torch.no_grad():
        h = model.enc(x)
        s = model.spike(h)
        s2 = model.spike2(model.fc(s))
        y = model.conv(s2.transpose(1, 2))
        p = torch.sigmoid(y)
    B, L, _ = x.shape
    ones = torch.ones(5, 4, 3)
    return {
        "enc_macs": B * L * 3 * 6,
        "fc_acs": int((s != 0).sum()) * 4,
        "conv_acs": conv1d_edges_reference(s2.transpose(1, 2), ones, 1, 1, 1, 1),
        "spikes": int(s.sum()), "spikes2": int(s2.sum()),
        "p_mean": float(p.double().mean()), "p_numel": p.numel(),
    }


def test_mixed_model_layers_neurons_and_sparsity():
    model = Mixed()
    x = torch.randn(2, 7, 3)
    ref = mixed_reference(model, x)
    torch.manual_seed(5)
    r = profile(model, x)
    assert r.layer("enc")["macs"] == ref["enc_macs"] and r.layer("enc")["acs"] == 0
    assert r.layer("fc")["acs"] == ref["fc_acs"] and r.layer("fc")["macs"] == 0
    assert r.layer("conv")["acs"] == ref["conv_acs"]
    spike = r.layer("spike")
    assert spike["spiking_neuron"] and spike["neuron_updates"] == 2 * 7 * 6
    assert spike["firing_rate"] == pytest.approx(ref["spikes"] / (2 * 7 * 6))
    assert r.layer("spike2")["firing_rate"] == pytest.approx(ref["spikes2"] / (2 * 7 * 4))
    sampler = r.layer("sampler")
    assert sampler["stochastic"] and sampler["probability"] == pytest.approx(ref["p_mean"])
    t = r.totals
    assert t["neuron_updates"] == 2 * 7 * 6 + 2 * 7 * 4 + ref["p_numel"]
    assert t["probability_mean"] == pytest.approx(ref["p_mean"])
    assert r.sparsity["network"] == pytest.approx(1 - t["spikes"] / t["neuron_updates"])
    rates = [r.layer(n)["firing_rate"] for n in ("spike", "spike2", "sampler")]
    assert r.sparsity["layer_mean"] == pytest.approx(1 - sum(rates) / 3)
    # totals = the sum of what each module ran itself = the root's inclusive counts
    for key in ("macs", "acs", "flops", "other_flops", "dense_macs"):
        assert sum(layer["self"][key] for layer in r.layers) == t[key]
        assert r.layer("")[key] == t[key]
    # ops inside spiking neurons are kept apart for the neuromorphic profiles
    assert t["neuron_internal"]["other_flops"] > 0


def test_nested_spiking_modules_count_once():
    class Outer(nn.Module):
        spiking_neuron = True

        def __init__(self):
            super().__init__()
            self.inner = Threshold()

        def forward(self, v):
            return self.inner(v)

    r = profile(Outer(), torch.randn(4, 5))
    assert r.totals["neuron_updates"] == 20


def test_neuron_with_non_spike_output_is_warned():
    class Bad(nn.Module):
        spiking_neuron = True

        def forward(self, v):
            return v * 2

    r = profile(Bad(), torch.rand(3) + 0.1)
    assert any("outside {0, 1, -1}" in w for w in r.to_dict()["warnings"])


def test_op_without_rule_is_listed_as_uncounted():
    class Sorter(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return torch.sort(self.lin(x), dim=-1).values

    r = profile(Sorter(), torch.randn(2, 4))
    assert r.uncounted == {"aten::sort": {"calls": 1, "modules": [""]}}
    assert "aten::sort" not in r.to_dict()["ops"]
    assert any("aten::sort" in w for w in r.to_dict()["warnings"])
    assert r.totals["macs"] == 2 * 4 * 4  # the rest is still counted


def test_profile_runs_in_eval_no_grad_and_restores_training():
    model = Mixed().train()
    x = torch.randn(1, 4, 3, requires_grad=True)
    profile(model, x)
    assert model.training
    assert x.grad is None


# ---- energy -------------------------------------------------------------------------------------
def test_energy_equals_the_formula_for_each_profile():
    torch.manual_seed(3)
    r = profile(Mixed(), torch.randn(2, 9, 3))
    d = r.to_dict()
    t = d["totals"]
    assert t["macs"] and t["acs"] and t["other_flops"] and t["spikes"]
    inside = t["neuron_internal"]
    sops = t["macs"] + t["acs"] + t["other_flops"] - inside["macs"] - inside["acs"] - inside["other_flops"]
    active, inactive = t["spikes"], t["neuron_updates"] - t["spikes"]
    pj = 1e-12
    expected = {
        "45nm-fp32": (t["macs"] * 4.6 + t["acs"] * 0.9 + t["other_flops"] * 2.3) * pj,
        "45nm-fp16": (t["macs"] * 1.5 + t["acs"] * 0.4 + t["other_flops"] * 0.75) * pj,
        "45nm-int8": (t["macs"] * 0.23 + t["acs"] * 0.03 + t["other_flops"] * 0.115) * pj,
        "loihi": (sops * 23.6 + active * 81 + inactive * 52 + t["spikes"] * 1.7) * pj,
        "truenorth": (sops * 26 + t["spikes"] * 2.3) * pj,
        "a100": t["dense_flops"] * 400 / 19.5 * pj,
        "a100-bf16": t["dense_flops"] * 400 / 312 * pj,
        "h100": t["dense_flops"] * 700 / 66.9 * pj,
        "h100-bf16": t["dense_flops"] * 700 / 989.4 * pj,
    }
    assert set(d["energy_j"]) == set(expected)
    for name, value in expected.items():
        assert d["energy_j"][name] == pytest.approx(value, rel=1e-12), name
        assert sum(d["energy_breakdown_j"][name].values()) == pytest.approx(value, rel=1e-12)
    assert t["dense_flops"] == 2 * t["dense_macs"] + t["other_flops"]
    assert t["dense_macs"] > t["macs"]  # the ACs' dense cost


def test_every_builtin_constant_has_a_source():
    for hw in builtin_profiles():
        hw.validate()
        assert hw.constants and all(c.source.strip() for c in hw.constants.values()), hw.name
    assert {"45nm-fp32", "45nm-fp16", "45nm-int8", "loihi", "truenorth", "a100", "h100"} <= {
        hw.name for hw in builtin_profiles()}


def test_hardware_selection_and_errors():
    lin = nn.Linear(2, 2)
    r = profile(lin, torch.randn(1, 2), hardware="loihi, h100")
    assert list(r.energy_j) == ["loihi", "h100"]
    with pytest.raises(ValueError, match="unknown hardware profile.*'tpu'"):
        profile(lin, torch.randn(1, 2), hardware=["tpu"])
    with pytest.raises(ValueError, match="lacks the constant 'ac_pj'"):
        from zoo_profiler import Constant
        HardwareProfile("x", "cmos", "", {"mac_pj": Constant(1, "pJ", "s"), "flop_pj": Constant(1, "pJ", "s")}).validate()


def test_energy_is_not_measured_without_cuda():
    r = profile(nn.Linear(2, 2), torch.randn(1, 2), measure_energy=True)
    measured = r.to_dict()["measured"]
    assert measured["available"] is False and "not a CUDA GPU" in measured["reason"]


# ---- report outputs -----------------------------------------------------------------------------
def test_json_round_trips(tmp_path):
    torch.manual_seed(0)
    r = profile(Mixed(), torch.randn(1, 5, 3))
    d = r.to_dict()
    assert {"totals", "layers", "energy_j", "uncounted", "sparsity", "hardware", "conventions"} <= set(d)
    assert {"macs", "acs", "flops", "neuron_updates"} <= set(d["totals"])
    for layer in d["layers"]:
        assert {"name", "macs", "acs", "flops", "neuron_updates", "firing_rate"} <= set(layer)
    path = tmp_path / "profile.json"
    r.to_json(path)
    loaded = json.loads(path.read_text())
    assert loaded == d
    assert Report.from_json(path).to_dict() == d
    with pytest.raises(ValueError, match="not a spikezoo profile"):
        Report.from_dict({"format": "other"})


def test_plot_writes_a_valid_png(tmp_path):
    from PIL import Image

    cases = ((Mixed(), torch.randn(1, 5, 3), None), (nn.Linear(3, 2), torch.randn(1, 3), None),
             (nn.Linear(3, 2), torch.randn(1, 3), []))
    for i, (model, x, hardware) in enumerate(cases):
        path = tmp_path / f"{i}.png"
        profile(model, x, hardware=hardware).plot(path)
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.size[0] > 100 and image.size[1] > 100
            image.verify()


def test_table_renders(capsys):
    from rich.console import Console

    r = profile(Mixed(), torch.randn(1, 5, 3))
    console = Console(width=150, record=True)
    r.print(console)
    text = console.export_text()
    assert "spike2" in text and "loihi" in text and "network sparsity" in text


def test_s4d_profile_from_zoo_profile():
    model = zoo.create("s4d", d_model=8, n_layers=1, d_state=4, seq_len=16)
    r = zoo.profile(model)
    assert r.to_dict()["input"]["shape"] == [1, 16, 1]
    assert r.totals["acs"] == 0 and r.totals["neuron_updates"] == 0
    assert r.sparsity["network"] is None
    assert r.uncounted == {}


def test_energy_measuring_loop_with_a_simulated_counter():
    from zoo_profiler.nvml import measure

    class Gpu:  # idles at 50 W; a forward pass takes 0.1 s and 2 J above idle
        t, energy = 0.0, 0.0

        def advance(self, dt, extra=0.0):
            self.t += dt
            self.energy += 50 * dt + extra

    gpu = Gpu()
    result = measure(run=lambda: gpu.advance(0.1, 2.0), read=lambda: gpu.energy, sync=lambda: None,
                     seconds=1.0, idle_seconds=0.5, clock=lambda: gpu.t, sleep=lambda s: gpu.advance(s))
    assert result["idle_power_w"] == pytest.approx(50)
    assert result["forwards"] == 10
    assert result["energy_j"] == pytest.approx(2 + 50 * 0.1)
    assert result["adjusted_energy_j"] == pytest.approx(2)
