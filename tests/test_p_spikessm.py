"""P-SpikeSSM plugin: sampler, surrogate, modes, step vs parallel, training, registered entries."""

import math

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.hub import WeightsUnavailableError
from zoo_p_spikessm import (
    PAPER_SETTINGS, PSpikeSSM, PSpikeSSMConfig, SpikeSampler, firing_probability,
)


SMALL = dict(d_model=8, d_state=4, n_layers=2, seq_len=24)


def small_model(**overrides) -> PSpikeSSM:
    return zoo.create("p_spikessm", **{**SMALL, **overrides})


# ---- sampler and surrogate ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sampler_spikes_are_exactly_binary(dtype):
    p = torch.rand(64, 50, dtype=dtype)
    s = SpikeSampler()(p)
    assert s.dtype == dtype
    assert set(s.unique().tolist()) == {0.0, 1.0}


def test_sampler_mean_matches_p_within_a_binomial_bound():
    p = torch.tensor([0.0, 0.01, 0.3, 0.5, 0.9, 1.0], dtype=torch.float64)
    n = 40000
    g = torch.Generator().manual_seed(123)
    mean = SpikeSampler()(p.expand(n, -1), generator=g).mean(0)
    bound = 5 * torch.sqrt(p * (1 - p) / n)  # 5 standard errors: fails by chance with prob ~6e-7
    assert (mean - p).abs().le(bound).all(), (mean, p)
    assert mean[0] == 0 and mean[-1] == 1  # p = 0 never fires, p = 1 always fires


def test_sampler_with_given_uniforms_fires_where_u_below_p():
    p, u = torch.rand(5, 7), torch.rand(5, 7)
    assert torch.equal(SpikeSampler()(p, u), (u < p).float())
    with pytest.raises(ValueError, match="shape"):
        SpikeSampler()(p, torch.rand(5, 6))


def test_same_seed_gives_same_spikes():
    p = torch.rand(4, 8, 100)
    draw = lambda seed: SpikeSampler()(p, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))


@pytest.mark.parametrize("surrogate", ["expectation", "straight_through"])
def test_gradient_equals_the_spec_formula(surrogate):
    """Spec section 3: s = Sampler(clamp(q, 0, 1)), ds/dq = 1 for 0 <= q <= 1 (inclusive), 0 otherwise;
    the A11 baseline passes 1 everywhere. The gradient does not depend on the sampled spikes."""
    q = torch.cat([torch.tensor([-0.5, 0.0, 0.3, 1.0, 1.7]), torch.randn(200) * 0.8 + 0.5]).double()
    w = torch.randn_like(q)
    grads = []
    for seed in (0, 1):
        qq = q.clone().requires_grad_()
        s = SpikeSampler()(firing_probability(qq, surrogate), generator=torch.Generator().manual_seed(seed))
        (w * s).sum().backward()
        grads.append(qq.grad)
    expected = w * ((q >= 0) & (q <= 1)).double() if surrogate == "expectation" else w
    assert torch.equal(grads[0], expected) and torch.equal(grads[1], expected)
    with pytest.raises(ValueError, match="surrogate"):
        firing_probability(q, "atan")


# ---- model: noise, modes, spikes ----------------------------------------------------------------
@pytest.mark.parametrize("overrides", [
    dict(populations=2), dict(populations=2, noise="code"), dict(populations=1, residual=False),
    dict(task="retrieval", vocab_size=11, n_classes=2),
])
def test_generator_and_predrawn_uniforms_give_the_same_pass(overrides):
    model = small_model(**overrides).eval()
    x = model.example_input(3, 24)
    y_gen = model(x, generator=torch.Generator().manual_seed(5))
    uniforms = model.draw_uniforms(3, 24, torch.Generator().manual_seed(5))
    assert len(uniforms) == model.noise_sites
    assert torch.equal(y_gen, model(x, uniforms=uniforms))
    assert not torch.equal(y_gen, model(x, generator=torch.Generator().manual_seed(6)))
    with pytest.raises(ValueError, match="uniform"):
        model(x, uniforms=uniforms[:-1])


def test_spike_sites_are_binary_and_probabilities_in_range():
    model = small_model(bidirectional=True, populations=2).eval()
    seen = []

    def hook(module, args, out):
        seen.append((args[0], out))

    for m in model.modules():
        if getattr(m, "spiking_neuron", False):
            assert m.stochastic
            m.register_forward_hook(hook)
    mixer_inputs = []
    for block in model.blocks:
        block.mixer.register_forward_hook(lambda m, args, out: mixer_inputs.append(args[0]))
    model(model.example_input(2, 24))
    assert len(seen) == 4 * SMALL["n_layers"]
    for p, s in seen:
        assert p.min() >= 0 and p.max() <= 1
        assert set(s.unique().tolist()) <= {0.0, 1.0}
    assert all(set(s.unique().tolist()) <= {0.0, 1.0} for s in mixer_inputs)


def test_inference_modes():
    model = small_model().eval()
    x = model.example_input(4, 24)
    g = lambda: torch.Generator().manual_seed(11)  # noqa: E731
    # eval default is one stochastic sample
    assert not torch.equal(model(x, generator=g()), model(x, generator=torch.Generator().manual_seed(12)))
    # expectation: deterministic, no randomness consumed
    e1, e2 = model(x, mode="expectation"), model(x, mode="expectation", generator=g())
    assert torch.equal(e1, e2)
    # average(k) = mean logits of k sample passes drawn in order from the same generator
    gen = g()
    passes = torch.stack([model(x, generator=gen) for _ in range(3)]).mean(0)
    assert torch.allclose(model(x, mode="average", k=3, generator=g()), passes, rtol=1e-6, atol=1e-6)
    model.set_inference_mode("average", k=3)
    assert model.config.inference == "average" and model.config.inference_samples == 3
    assert torch.allclose(model(x, generator=g()), passes, rtol=1e-6, atol=1e-6)
    model.set_inference_mode("expectation")
    assert torch.equal(model(x), e1)
    model.train()  # training samples whatever the eval mode says (dropout is 0 here)
    assert not torch.equal(model(x, generator=g()), e1)
    with pytest.raises(ValueError, match="mode"):
        model(x, mode="vote")
    with pytest.raises(ValueError, match="k=2"):
        model(x, mode="sample", k=2)
    with pytest.raises(ValueError, match="uniforms"):
        model(x, mode="expectation", uniforms=model.draw_uniforms(4, 24))
    with pytest.raises(ValueError):
        model.set_inference_mode("vote")


# ---- step mode ----------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides", [
    dict(populations=2, prenorm=False), dict(populations=2, prenorm=True, noise="code"),
    dict(populations=1, prenorm=True, residual=False, pooling="last"), dict(populations=2, n_ssm=None, norm="layer"),
])
def test_causal_step_mode_equals_parallel_mode(overrides):
    model = small_model(bidirectional=False, **overrides).double()
    # move BatchNorm running statistics off their init so the eval-mode norm matters
    with torch.no_grad():
        model.train()(model.example_input(8, 24).double())
    model.eval()
    B, L = 3, 24
    x = model.example_input(B, L).double()
    # expectation mode
    y = model(x, mode="expectation")
    state = model.init_state(B, torch.float64)
    for t in range(L):
        out, state = model.step(x[:, t], state, mode="expectation")
    assert torch.allclose(out, y, rtol=1e-10, atol=1e-10)
    # sample mode with the same random numbers
    uniforms = model.draw_uniforms(B, L, torch.Generator().manual_seed(3), dtype=torch.float64)
    y = model(x, mode="sample", uniforms=uniforms)
    state = model.init_state(B, torch.float64)
    for t in range(L):
        out, state = model.step(x[:, t], state, uniforms=[u[..., t] for u in uniforms])
    assert torch.allclose(out, y, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="average"):
        model.step(x[:, 0], model.init_state(B, torch.float64), mode="average")


def test_two_sided_model_has_no_step_mode():
    with pytest.raises(RuntimeError, match="causal"):
        small_model(bidirectional=True).init_state(2)


# ---- training -----------------------------------------------------------------------------------
def test_short_training_run_lowers_the_loss_and_reaches_the_ssm():
    torch.manual_seed(0)
    model = small_model(n_layers=1, n_classes=2, seq_len=16)
    B, L = 32, 16
    labels = torch.randint(0, 2, (B,))
    x = 0.7 * torch.randn(B, L, 1) + (labels.float() * 2 - 1)[:, None, None] * 0.6
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for i in range(25):
        loss = F.cross_entropy(model(x), labels)
        opt.zero_grad()
        loss.backward()
        if i == 0:
            for name in ("log_A_real", "A_imag", "P", "B", "inv_dt", "C"):
                for neuron in model.blocks[0].neuron:
                    grad = getattr(neuron.conv.kernel, name).grad
                    assert grad is not None and grad.abs().sum() > 0, name
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, losses


# ---- config and registry ------------------------------------------------------------------------
def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="n_ssm"):
        PSpikeSSMConfig(d_model=8, n_ssm=3)
    with pytest.raises(ValueError, match="discretization"):
        PSpikeSSMConfig(discretization="zoh")
    with pytest.raises(ValueError, match="populations"):
        PSpikeSSMConfig(populations=3)
    with pytest.raises(ValueError, match="noise_mode"):
        zoo.create("p_spikessm", noise_mode="code")


def spec_parameter_count(c: dict) -> int:
    """Spec section 5: per population SSM 2*D*N (two-sided C) + 2D (dt, D skip) + 3N per SSM (A, P, B);
    affines 3 pairs (two populations) or 2 pairs (one); mixer P*D*D + D; one norm (2D) per block."""
    D, N, P = c["d_model"], c["d_state"], c["populations"]
    n_ssm = D if c["n_ssm"] is None else c["n_ssm"]
    ssm = (2 if c["bidirectional"] else 1) * D * N + 2 * D + 3 * N * n_ssm
    block = P * ssm + (6 * D if P == 2 else 4 * D) + P * D * D + D + 2 * D
    encoder = c["vocab_size"] * D if c.get("vocab_size") else 2 * D
    if c.get("task") == "retrieval":
        decoder = 4 * D * D + D + D * 2 + 2
    else:
        decoder = D * c["n_classes"] + c["n_classes"]
    return c["n_layers"] * block + encoder + (2 * D if c["prenorm"] else 0) + decoder


@pytest.mark.parametrize("key", sorted(PAPER_SETTINGS))
def test_registered_entry_builds_runs_and_has_no_weights(key):
    name = f"p-spikessm-{key}"
    entry = zoo.info(name)
    assert entry["paper"] == "arXiv:2406.02923" and entry["architecture"] == "p_spikessm"
    assert 50 < entry["reported"]["accuracy"] < 100 and "[" in entry["notes"]
    assert entry["parameters"] == spec_parameter_count(entry["config"])
    model = zoo.create(name, d_model=8, d_state=4, n_layers=1, seq_len=32)
    x = model.example_input(2, 32)
    out = model(x)
    assert out.shape == (2, entry["config"]["n_classes"]) and torch.isfinite(out).all()
    with pytest.raises(WeightsUnavailableError):
        zoo.load(name)


def test_spec_parameter_totals():
    """The approximate totals of spec section 5, from the registered configs."""
    totals = {"listops": 0.17e6, "text": 0.19e6, "retrieval": 0.59e6, "image": 4.0e6, "pathfinder": 1.8e6,
              "psmnist": 0.44e6}
    for key, total in totals.items():
        count = zoo.info(f"p-spikessm-{key}")["parameters"]
        assert math.isclose(count, total, rel_tol=0.04), (key, count)


def test_save_and_load_round_trip(tmp_path):
    model = small_model().eval()
    folder = zoo.save_pretrained(model, tmp_path / "tiny-p-spikessm")
    card = (folder / "README.md").read_text()
    assert "P-SpikeSSM" in card and "Reconstructed" in card
    loaded = zoo.load(folder).eval()
    x = model.example_input(2, 24)
    assert torch.equal(model(x, mode="expectation"), loaded(x, mode="expectation"))
    assert loaded.neuron_recipe()["surrogate"].startswith("ds/dq")
