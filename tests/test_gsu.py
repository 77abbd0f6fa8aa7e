"""GSU plugin: exact ternarisation, gradient routing (spec section 8 item 5), step = parallel,
training, paper entries and parameter counts."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.hub import WeightsUnavailableError
from zoo.registry import registry
from zoo_gsu import GatedSpikingUnit, TernaryActivation, TernaryWeight

TINY = {"d_model": 8, "d_state": 4, "n_layers": 2}
SSM_PARAMS = ("log_dt", "log_A_real", "A_imag", "C")
PRF = {"gsu_shared_weight": False, "gsu_ste": "atan", "gsu_post": "gelu", "gsu_learnable_scale": True}


def tern_reference(x: np.ndarray, per_row: bool, ratio: float = 0.15) -> np.ndarray:
    """sign(x) * [|x| >= ratio * max|x|], written independently in numpy."""
    peak = np.abs(x).max(axis=-1, keepdims=True) if per_row else np.abs(x).max()
    return np.sign(x) * (np.abs(x) >= ratio * peak)


def module_outputs(model, x, kind):
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
             for m in model.modules() if isinstance(m, kind)]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def randomize_norms(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.LayerNorm)):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.3, 0.3)


# ---- ternarisation ------------------------------------------------------------------------------
def test_ternarisers_are_exact_and_match_reference():
    x = torch.randn(5, 7, 16, dtype=torch.float64)
    x[0, 0] = 0.0  # an all-zero token maps to zeros
    for scope, per_row in (("token", True), ("tensor", False)):
        for surrogate in (None, "atan"):
            t = TernaryActivation(0.15, scope, surrogate, 2.0)(x)
            assert t.dtype == torch.float64
            np.testing.assert_array_equal(t.numpy(), tern_reference(x.numpy(), per_row))
    w = torch.randn(16, 16, dtype=torch.float64)
    np.testing.assert_array_equal(TernaryWeight(0.15)(w).numpy(), tern_reference(w.numpy(), per_row=False))
    assert set(TernaryActivation()(x).unique().tolist()) == {-1.0, 0.0, 1.0}


def test_model_activations_and_weights_are_ternary():
    model = zoo.create("gsu", **TINY, seq_len=64).eval()
    x = model.example_input(3, 64)
    acts = module_outputs(model, x, TernaryActivation)
    weights = module_outputs(model, x, TernaryWeight)
    assert len(acts) == len(weights) == TINY["n_layers"]
    assert TernaryActivation.spiking_neuron is True
    for t in acts + weights:
        assert set(t.unique().tolist()) == {-1.0, 0.0, 1.0}
    for layer, w in zip((b.layer for b in model.blocks), weights):
        np.testing.assert_array_equal(w.numpy(), tern_reference(layer.gsu.weight.detach().numpy(), False))


# ---- gradient routing (spec section 8 item 5) ---------------------------------------------------
def test_gradient_routing_matches_analytic_formulas():
    torch.manual_seed(3)
    H, M = 12, 40
    gsu = GatedSpikingUnit(H).double()
    y = torch.randn(M, H, dtype=torch.float64, requires_grad=True)
    G = torch.randn(M, H, dtype=torch.float64)  # dL/do
    gsu(y).backward(G)
    Y, W = y.detach().numpy(), gsu.weight.detach().numpy()
    ta, tw = tern_reference(Y, True), tern_reference(W, False)
    a = ta @ W + gsu.bias_spike.detach().numpy()
    g = Y @ tw + gsu.bias_identity.detach().numpy()
    Gn = G.numpy()
    np.testing.assert_allclose(y.grad.numpy(), (Gn * a) @ tw.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gsu.weight.grad.numpy(), ta.T @ (Gn * g), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gsu.bias_spike.grad.numpy(), (Gn * g).sum(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gsu.bias_identity.grad.numpy(), (Gn * a).sum(0), rtol=1e-12, atol=1e-12)


def test_no_gradient_reaches_y_through_the_spike_branch():
    gsu = GatedSpikingUnit(6).double()
    y = torch.randn(10, 6, dtype=torch.float64, requires_grad=True)
    assert not gsu.tern_act(y).requires_grad
    a, g = gsu.branches(y)
    (a * torch.randn_like(a)).sum().backward()
    assert y.grad is None  # the spike branch is not connected to y in the autograd graph
    assert gsu.weight.grad is not None


def test_surrogate_ternariser_gradients_prf_variant():
    # gsu_ste='atan', separate weights: d tern(x)/dx = bump(x - t) + bump(x + t), bump = 1/(1+(pi v)^2).
    torch.manual_seed(4)
    H, M = 10, 30
    gsu = GatedSpikingUnit(H, shared_weight=False, surrogate="atan", scale=2.0).double()
    y = torch.randn(M, H, dtype=torch.float64, requires_grad=True)
    G = torch.randn(M, H, dtype=torch.float64)
    gsu(y).backward(G)
    Y, W1, W2 = y.detach().numpy(), gsu.weight.detach().numpy(), gsu.weight_identity.detach().numpy()

    def bump(v):
        return 1 / (1 + (math.pi * v) ** 2)

    t_y = 0.15 * np.abs(Y).max(-1, keepdims=True)
    t_w = 0.15 * np.abs(W2).max()
    ta, tw = tern_reference(Y, True), tern_reference(W2, False)
    a = ta @ W1 + gsu.bias_spike.detach().numpy()
    g = Y @ tw + gsu.bias_identity.detach().numpy()
    Gn = G.numpy()
    dy = (Gn * a) @ tw.T + ((Gn * g) @ W1.T) * (bump(Y - t_y) + bump(Y + t_y))
    dW2 = (Y.T @ (Gn * a)) * (bump(W2 - t_w) + bump(W2 + t_w))
    np.testing.assert_allclose(y.grad.numpy(), dy, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gsu.weight.grad.numpy(), ta.T @ (Gn * g), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gsu.weight_identity.grad.numpy(), dW2, rtol=1e-10, atol=1e-12)


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match="gsu_ste"):
        zoo.create("gsu", gsu_input="spikes")  # a Heaviside with no surrogate would cut the SSM off
    with pytest.raises(ValueError, match="gsu_ste"):
        zoo.create("gsu", gsu_shared_weight=False)  # W2 would never learn
    with pytest.raises(ValueError, match="gsu_threshold"):
        zoo.create("gsu", gsu_threshold=1.5)
    with pytest.raises(ValueError, match="gsu_post"):
        zoo.create("gsu", gsu_post="relu")
    with pytest.raises(ValueError, match="expected 6 channels"):
        GatedSpikingUnit(6)(torch.randn(3, 5))


# ---- step mode ----------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides", [
    {},
    {**PRF, "prenorm": True, "norm": "layer", "discretization": "bilinear"},
    {"gsu_input": "spikes", "gsu_ste": "fast_sigmoid", "gsu_post": "none"},
])
def test_step_equals_parallel(overrides):
    L = 24
    model = zoo.create("gsu", **TINY, d_input=3, seq_len=L, **overrides).double().eval()
    randomize_norms(model)
    x = torch.randn(2, L, 3, dtype=torch.float64)
    state = model.init_state(2, dtype=torch.float64)
    for t in range(L):
        logits, state = model.step(x[:, t], state)
        if t in (0, L // 2, L - 1):
            torch.testing.assert_close(logits, model(x[:, : t + 1]), rtol=1e-8, atol=1e-9)
    layer = model.blocks[1].layer
    u = torch.randn(2, 8, L, dtype=torch.float64)
    s = layer.init_state(2, dtype=torch.float64)
    steps = []
    for t in range(L):
        out, s = layer.step(u[..., t], s)
        steps.append(out)
    torch.testing.assert_close(torch.stack(steps, -1), layer(u), rtol=1e-8, atol=1e-9)


def test_step_mode_refusals():
    with pytest.raises(RuntimeError, match="bidirectional"):
        zoo.create("gsu", **TINY, bidirectional=True).init_state(1)
    with pytest.raises(RuntimeError, match="gsu_act_scope"):
        zoo.create("gsu", **TINY, gsu_act_scope="tensor").init_state(1)


# ---- training -----------------------------------------------------------------------------------
def test_short_training_lowers_loss_and_reaches_the_ssm():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 32, 1, generator=gen)
    y = (x.sum((1, 2)) > 0).long()
    model = zoo.create("gsu", d_model=16, d_state=8, n_layers=2, n_classes=2, seq_len=32, norm="layer")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.Adam(zoo.nn.param_groups(model, lr=1e-2, weight_decay=0.0))
    losses = []
    for i in range(40):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if i == 0:
            # With gsu_ste='none' the only path from the SSM to the loss is the identity branch.
            for block in model.blocks:
                for name in SSM_PARAMS:
                    grad = getattr(block.layer.ssm.kernel, name).grad
                    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
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
    return sorted(n for n, e in registry.models.items() if e.architecture == "gsu")


def test_paper_settings_are_registered():
    names = entries()
    for task in ("listops", "text", "retrieval", "image", "pathfinder", "pathx", "smnist", "psmnist", "scifar"):
        assert f"gsu-{task}" in names
    assert zoo.info("gsu-pathfinder")["reported"] == {"accuracy": 91.30}
    assert zoo.info("gsu-scifar")["reported"] == {"accuracy": 82.49}
    assert zoo.info("gsu-pathx")["reported"] == {}  # n/a in the secondary tables; A12's 91.6 not used
    assert zoo.info("gsu-retrieval")["config"]["task"] == "retrieval"


@pytest.mark.parametrize("name", entries())
def test_every_entry_builds_and_runs_at_reduced_size(name):
    model = zoo.create(name, seq_len=48, d_model=8, n_layers=1).eval()
    x = model.example_input(2, 48)
    out = model(x)
    assert out.shape == (2, model.config.n_classes)
    assert torch.isfinite(out).all()
    for t in module_outputs(model, x, TernaryActivation):
        assert set(t.unique().tolist()) <= {-1.0, 0.0, 1.0}
    if not registry.models[name].bundled:  # paper settings: no weights exist yet
        with pytest.raises(WeightsUnavailableError, match="no weights exist"):
            zoo.load(name)


# ---- parameter counts (spec section 3.5) --------------------------------------------------------
def expected_parameters(c: dict) -> int:
    H, N = c["d_model"], c["d_state"]
    channels = 2 if c["bidirectional"] else 1
    ssm = H * N + channels * H * N + 2 * H  # A (re, im), C (complex), dt and D
    gsu = (H * H if c["gsu_shared_weight"] else 2 * H * H) + 2 * H
    gsu += 2 * H if c["gsu_post"] == "layernorm_gelu" else 0
    gsu += 1 if c["gsu_learnable_scale"] else 0
    norm = 0 if c["norm"] == "none" else 2 * H
    encoder = c["vocab_size"] * H if c["vocab_size"] else c["d_input"] * H + H
    if c["task"] == "retrieval":
        decoder = 4 * H * H + H + H * c["n_classes"] + c["n_classes"]
    else:
        decoder = H * c["n_classes"] + c["n_classes"]
    return c["n_layers"] * (ssm + gsu + norm) + encoder + decoder + (norm if c["prenorm"] else 0)


@pytest.mark.parametrize("name", ["gsu", *entries()])
def test_parameter_counts_match_spec_formulas(name):
    info = zoo.info(name)
    assert info["parameters"] == expected_parameters(info["config"])


def test_parameter_counts_of_variants():
    for overrides in (PRF, {"gsu_post": "none", "norm": "none", "bidirectional": True}):
        model = zoo.create("gsu", **TINY, **overrides)
        assert sum(p.numel() for p in model.parameters()) == expected_parameters(model.config.to_dict())
    # shared W removes H^2 per layer relative to separate weights (spec section 3.5)
    shared = zoo.info("gsu")["parameters"]
    separate = sum(p.numel() for p in zoo.create("gsu", gsu_shared_weight=False, gsu_ste="atan").parameters())
    assert separate - shared == 4 * 128 * 128


def test_learnable_scale_has_its_optimizer_rule():
    model = zoo.create("gsu", **TINY, **PRF)
    scale = model.blocks[0].layer.gsu.log_scale
    assert scale._optim == {"lr": 1e-3, "weight_decay": 0.0}
    groups = zoo.nn.param_groups(model, lr=0.01, weight_decay=0.05)
    (group,) = [g for g in groups if any(p is scale for p in g["params"])]
    assert group["lr"] == 1e-3 and group["weight_decay"] == 0.0


def test_card_notes_cover_every_option():
    notes = zoo.create("gsu", **TINY).card_notes
    for key in ("gsu_shared_weight", "gsu_ste", "gsu_threshold", "gsu_act_scope", "gsu_post", "gsu_input",
                "gsu_learnable_scale"):
        assert f"`{key}`" in notes, key


def test_save_and_load_round_trip_keeps_outputs_and_card_notes(tmp_path):
    model = zoo.create("gsu", **TINY, seq_len=16, **PRF).eval()  # separate weights and the scale too
    zoo.save_pretrained(model, tmp_path, name="gsu-tiny", paper="arXiv:2401.00955")
    loaded = zoo.load(tmp_path)
    x = model.example_input(2, 16)
    assert torch.equal(model(x), loaded(x))
    assert "Gated Spiking Unit" in (tmp_path / "README.md").read_text()
