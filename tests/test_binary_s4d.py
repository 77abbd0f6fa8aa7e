"""Binary S4D plugin: exact spikes, surrogate gradients, step = parallel, training, paper entries."""

import math

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.hub import WeightsUnavailableError
from zoo.registry import registry
from zoo_binary_s4d import BinaryS4DConfig, BinaryS4DLayer, HeavisideSpike

TINY = {"d_model": 8, "d_state": 4, "n_layers": 2}
SSM_PARAMS = ("log_dt", "log_A_real", "A_imag", "C")


def spike_outputs(model, x):
    """Outputs of every spiking-neuron module during one forward."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
             for m in model.modules() if getattr(type(m), "spiking_neuron", False)]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def randomize_norms(model):
    """Give BatchNorm/LayerNorm non-trivial statistics and affines so step tests can fail."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.LayerNorm)):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.3, 0.3)


# ---- spikes -------------------------------------------------------------------------------------
def test_spike_forward_is_exactly_binary():
    model = zoo.create("binary_s4d", **TINY, seq_len=64).eval()
    outs = spike_outputs(model, model.example_input(3, 64))
    assert len(outs) == TINY["n_layers"]
    for s in outs:
        assert s.dtype == torch.float32
        assert set(s.unique().tolist()) == {0.0, 1.0}  # both values occur: a real spike train


def test_spike_threshold_and_exact_values():
    x = torch.randn(4, 6, 50, dtype=torch.float64)
    s = HeavisideSpike(threshold=0.3)(x)
    assert s.dtype == torch.float64
    assert torch.equal(s, (x > 0.3).double())


def test_surrogate_gradients_match_formulas():
    x = torch.randn(1000, dtype=torch.float64) * 0.5
    x[:3] = torch.tensor([0.0, 1e-3, -1e-3], dtype=torch.float64)
    upstream = torch.randn(1000, dtype=torch.float64)
    formulas = {
        ("atan", 2.0): lambda v: 1 / (1 + (math.pi * v) ** 2),  # alpha = 2: peak 1, HWHM 1/pi
        ("atan", 3.0): lambda v: 1.5 / (1 + (1.5 * math.pi * v) ** 2),
        ("fast_sigmoid", 25.0): lambda v: 1 / (1 + 25 * v.abs()) ** 2,
    }
    for (name, scale), formula in formulas.items():
        for theta in (0.0, 0.2):
            xr = x.clone().requires_grad_()
            HeavisideSpike(theta, name, scale)(xr).backward(upstream)
            torch.testing.assert_close(xr.grad, upstream * formula(x - theta), rtol=1e-12, atol=0)


def test_atan_surrogate_is_the_derivative_of_the_smooth_step():
    # Independent reference: the arctan surrogate is d/dx of 1/2 + arctan(pi alpha x / 2) / pi.
    x = torch.randn(200, dtype=torch.float64, requires_grad=True)
    smooth = (0.5 + torch.atan(math.pi * x) / math.pi).sum()
    (ref,) = torch.autograd.grad(smooth, x)
    HeavisideSpike(0.0, "atan", 2.0)(x).sum().backward()
    torch.testing.assert_close(x.grad, ref, rtol=1e-12, atol=1e-15)


def test_config_picks_surrogate_and_scale():
    model = zoo.create("binary_s4d", **TINY, surrogate="fast_sigmoid")
    spikes = [m for m in model.modules() if isinstance(m, HeavisideSpike)]
    assert [(s.surrogate, s.scale) for s in spikes] == [("fast_sigmoid", 25.0)] * 2
    assert model.neuron_recipe()["surrogate_scale"] == 25.0


def test_binary_mixing_is_column_accumulation():
    # W s with s in {0,1}^H equals the sum of the columns of W where s fires (spec section 8 item 4).
    layer = BinaryS4DLayer(BinaryS4DConfig(d_model=6, d_state=4)).double().eval()
    s = layer.spike(layer.ssm(torch.randn(2, 6, 20, dtype=torch.float64)))
    W, b = layer.mixing.linear.weight, layer.mixing.linear.bias  # (2H, H)
    tokens = s.transpose(1, 2).reshape(-1, 6)  # (B*L, H)
    accumulated = torch.stack([W[:, t.bool()].sum(1) + b for t in tokens])
    torch.testing.assert_close(layer.mixing.linear(tokens), accumulated, rtol=1e-12, atol=1e-12)


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match="surrogate"):
        zoo.create("binary_s4d", surrogate="sigmoid")
    with pytest.raises(ValueError, match="atan_alpha"):
        zoo.create("binary_s4d", atan_alpha=0.0)
    with pytest.raises(ValueError, match="spike_thresh"):
        zoo.create("binary_s4d", spike_thresh=0.1)


# ---- step mode ----------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides", [
    {"prenorm": False, "norm": "batch", "mixing": "glu"},
    {"prenorm": True, "norm": "layer", "mixing": "linear", "discretization": "bilinear", "threshold": 0.1},
])
def test_step_equals_parallel_classification(overrides):
    L = 24
    model = zoo.create("binary_s4d", **TINY, d_input=3, seq_len=L, **overrides).double().eval()
    randomize_norms(model)
    x = torch.randn(2, L, 3, dtype=torch.float64)
    state = model.init_state(2, dtype=torch.float64)
    for t in range(L):
        logits, state = model.step(x[:, t], state)
        if t in (0, L // 2, L - 1):  # a causal model's prefix logits = forward on the prefix
            torch.testing.assert_close(logits, model(x[:, : t + 1]), rtol=1e-8, atol=1e-9)


def test_step_equals_parallel_layer_and_lm():
    L = 32
    model = zoo.create("binary_s4d", **TINY, task="lm", vocab_size=13).double().eval()
    randomize_norms(model)
    x = torch.randint(0, 13, (3, L))
    state = model.init_state(3, dtype=torch.float64)
    stepped = []
    for t in range(L):
        out, state = model.step(x[:, t], state)
        stepped.append(out)
    torch.testing.assert_close(torch.stack(stepped, 1), model(x), rtol=1e-8, atol=1e-9)
    # the layer alone, every time step, including its spike train
    layer = model.blocks[0].layer
    u = torch.randn(3, 8, L, dtype=torch.float64)
    s_state = layer.init_state(3, dtype=torch.float64)
    steps = []
    for t in range(L):
        y, s_state = layer.step(u[..., t], s_state)
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps, -1), layer(u), rtol=1e-8, atol=1e-9)


def test_bidirectional_refuses_step_mode():
    model = zoo.create("binary_s4d", **TINY, bidirectional=True)
    with pytest.raises(RuntimeError, match="bidirectional"):
        model.init_state(1)
    with pytest.raises(RuntimeError, match="bidirectional"):
        model.blocks[0].layer.init_state(1)


# ---- training -----------------------------------------------------------------------------------
def test_short_training_lowers_loss_through_the_spikes():
    # Synthetic task: is the sum of the sequence positive? 64 fixed examples, length 32.
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 32, 1, generator=gen)
    y = (x.sum((1, 2)) > 0).long()
    model = zoo.create("binary_s4d", d_model=16, d_state=8, n_layers=2, n_classes=2, seq_len=32, norm="layer")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.Adam(zoo.nn.param_groups(model, lr=1e-2, weight_decay=0.0))
    losses = []
    for i in range(40):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if i == 0:
            # The SSM output reaches the loss only through the Heaviside, so these gradients are
            # surrogate gradients.
            for block in model.blocks:
                for name in SSM_PARAMS:
                    grad = getattr(block.layer.ssm.kernel, name).grad
                    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
                assert block.layer.ssm.D.grad.abs().sum() > 0
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.7 * losses[0], losses
    for block in range(2):
        for name in SSM_PARAMS:
            key = f"blocks.{block}.layer.ssm.kernel.{name}"
            assert not torch.equal(before[key], dict(model.named_parameters())[key]), key


# ---- paper entries ------------------------------------------------------------------------------
def entries():
    registry.fill()
    return sorted(n for n, e in registry.models.items() if e.architecture == "binary_s4d")


def test_paper_settings_are_registered():
    names = entries()
    for task in ("listops", "text", "retrieval", "image", "pathfinder", "pathx", "smnist", "psmnist", "scifar"):
        assert f"binary-s4d-{task}" in names
    info = zoo.info("binary-s4d-listops")
    assert info["reported"] == {"accuracy": 54.80} and info["measured"] == {}
    assert info["paper"] == "arXiv:2401.00955" and "percent" in info["notes"]
    assert zoo.info("binary-s4d-pathx")["config"]["ssm_init"] == "inv"
    assert zoo.info("binary-s4d-scifar-fast-sigmoid")["config"]["surrogate"] == "fast_sigmoid"
    assert zoo.info("binary-s4d-psmnist")["reported"] == {}


@pytest.mark.parametrize("name", entries())
def test_every_entry_builds_and_runs_at_reduced_size(name):
    model = zoo.create(name, seq_len=48, d_model=8, n_layers=1).eval()
    x = model.example_input(2, 48)
    out = model(x)
    assert out.shape == (2, model.config.n_classes)
    assert torch.isfinite(out).all()
    for s in spike_outputs(model, x):
        assert set(s.unique().tolist()) <= {0.0, 1.0}
    if not registry.models[name].bundled:  # paper settings: no weights exist yet
        with pytest.raises(WeightsUnavailableError, match="no weights exist"):
            zoo.load(name)


# ---- parameter counts (spec section 3.5) --------------------------------------------------------
def expected_parameters(c: dict) -> int:
    H, N = c["d_model"], c["d_state"]
    channels = 2 if c["bidirectional"] else 1
    ssm = H * N + channels * H * N + 2 * H  # A (re, im), C (complex), dt and D
    mixing = 2 * H * H + 2 * H if c["mixing"] == "glu" else H * H + H
    norm = 0 if c["norm"] == "none" else 2 * H
    encoder = c["vocab_size"] * H if c["vocab_size"] else c["d_input"] * H + H
    if c["task"] == "retrieval":
        decoder = 4 * H * H + H + H * c["n_classes"] + c["n_classes"]
    else:
        decoder = H * c["n_classes"] + c["n_classes"]
    return c["n_layers"] * (ssm + mixing + norm) + encoder + decoder + (norm if c["prenorm"] else 0)


@pytest.mark.parametrize("name", ["binary_s4d", *entries()])
def test_parameter_counts_match_spec_formulas(name):
    info = zoo.info(name)
    assert info["parameters"] == expected_parameters(info["config"])


def test_parameter_counts_of_built_models():
    for overrides in ({"mixing": "linear", "norm": "none"}, {"bidirectional": True, "prenorm": True}):
        model = zoo.create("binary_s4d", **TINY, **overrides)
        n = sum(p.numel() for p in model.parameters())
        assert n == expected_parameters(model.config.to_dict())


def test_card_notes_cover_every_option():
    notes = zoo.create("binary_s4d", **TINY).card_notes
    for key in ("surrogate", "atan_alpha", "fast_sigmoid_k", "threshold", "mixing"):
        assert f"`{key}`" in notes, key


def test_save_and_load_round_trip_keeps_outputs_and_card_notes(tmp_path):
    model = zoo.create("binary_s4d", **TINY, seq_len=16, mixing="linear").eval()
    zoo.save_pretrained(model, tmp_path, name="binary-s4d-tiny", paper="arXiv:2401.00955")
    loaded = zoo.load(tmp_path)
    x = model.example_input(2, 16)
    assert torch.equal(model(x), loaded(x))
    assert "Binary S4D" in (tmp_path / "README.md").read_text()
