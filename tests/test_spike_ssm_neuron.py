"""SRR neuron: PMBC against the sequential loop (float64, spike for spike), capped mode, gradients,
step mode. The loop of spec section 1.2 is the reference; PMBC is a different algorithm."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo_spike_ssm.neuron import SRRNeuron, srr_kernels, srr_pmbc, srr_sequential

F64 = torch.float64
# 12 channels: every combination of theta in {0.5, 1, 2} and alpha in {0, 0.3, 1, 2.5}
THETAS = torch.tensor([0.5, 1.0, 2.0], dtype=F64).repeat_interleave(4)
ALPHAS = torch.tensor([0.0, 0.3, 1.0, 2.5], dtype=F64).repeat(3)
H = len(THETAS)


def rows(batch: int, L: int, generator: torch.Generator, ties: bool) -> tuple[torch.Tensor, ...]:
    """(batch*H, L) currents N(0.3, 1) with per-row theta/alpha; with `ties`, batch element 0 is zero
    up to a random step and then exactly theta there (m = theta exactly: the neuron must fire)."""
    x = 0.3 + torch.randn(batch, H, L, generator=generator, dtype=F64)
    if ties and L > 1:
        for h in range(H):
            k = int(torch.randint(0, L - 1, (1,), generator=generator))
            x[0, h, :k] = 0.0
            x[0, h, k] = THETAS[h]
    thr = THETAS.repeat(batch).unsqueeze(1)
    alpha = ALPHAS.repeat(batch).unsqueeze(1)
    return x.reshape(batch * H, L), thr, alpha


@pytest.mark.parametrize("tau", [0.2, 0.5, 0.9])
def test_pmbc_equals_sequential_spike_for_spike(tau):
    """3 x (3 x 216 + 12) = 1980 random sequences (L from 1 to 4096), exact ties included."""
    generator = torch.Generator().manual_seed(int(tau * 10))
    n_sequences = 0
    for tau_r in (0.3, 0.8, tau):  # tau_r == tau takes the other closed form of the kernel
        cases = [(1, 4, "toeplitz"), (2, 4, "toeplitz"), (17, 4, "toeplitz"), (256, 4, "toeplitz"), (1024, 2, "fft")]
        if tau_r == 0.3:  # at tau 0.9 PMBC needs ~L/5 passes: one long case per tau keeps this fast
            cases.append((4096, 1, "fft"))
        for L, batch, engine in cases:
            x, thr, alpha = rows(batch, L, generator, ties=engine == "toeplitz")
            expected, _ = srr_sequential(x, thr, alpha, tau, tau_r)
            got, info = srr_pmbc(x, thr, alpha, tau, tau_r, engine=engine)
            mismatches = int((got != expected).sum())
            assert mismatches == 0, f"tau={tau} tau_r={tau_r} L={L}: {mismatches} spikes differ"
            assert 1 <= info["passes"] <= L and info["undecided"] == 0.0
            n_sequences += x.shape[0]
    assert n_sequences == 3 * 216 + 12


def test_ties_fire_and_engines_agree():
    x = torch.zeros(2, 8, dtype=F64)
    x[:, 3] = 1.0  # m_3 = theta exactly
    thr, alpha = torch.ones(2, 1, dtype=F64), torch.full((2, 1), 0.5, dtype=F64)
    for engine in ("toeplitz", "fft"):
        s, _ = srr_pmbc(x, thr, alpha, 0.2, 0.5, engine=engine)
        assert s[:, 3].tolist() == [1.0, 1.0] and s.sum() == 2
    generator = torch.Generator().manual_seed(5)
    x, thr, alpha = rows(3, 300, generator, ties=False)
    a, _ = srr_pmbc(x, thr, alpha, 0.5, 0.8, engine="fft")
    b, _ = srr_pmbc(x, thr, alpha, 0.5, 0.8, engine="toeplitz")
    assert torch.equal(a, b)


quarters = st.integers(-8, 10).map(lambda n: n / 4)


@settings(max_examples=60, deadline=None)
@given(tau=st.sampled_from([0.0, 0.25, 0.5, 0.75]), tau_r=st.sampled_from([0.0, 0.25, 0.5, 0.75]),
       theta=st.sampled_from([0.5, 1.0, 1.5]), alpha=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
       values=st.lists(quarters, min_size=1, max_size=16))
def test_property_dyadic_inputs_exact_including_ties(tau, tau_r, theta, alpha, values):
    """Dyadic parameters and inputs make every sum exact in float64, so ties (m == theta) are
    common and both algorithms must agree on them too."""
    x = torch.tensor([values], dtype=F64)
    thr, a = torch.tensor([[theta]], dtype=F64), torch.tensor([[alpha]], dtype=F64)
    expected, _ = srr_sequential(x, thr, a, tau, tau_r)
    got, info = srr_pmbc(x, thr, a, tau, tau_r, engine="toeplitz")
    assert torch.equal(got, expected)
    assert info["passes"] <= len(values)


def test_dyadic_sequences_do_contain_exact_ties():
    generator = torch.Generator().manual_seed(3)
    x = torch.randint(-8, 11, (400, 16), generator=generator).to(F64) / 4
    thr, alpha = torch.ones(400, 1, dtype=F64), torch.full((400, 1), 0.25, dtype=F64)
    expected, membrane = srr_sequential(x, thr, alpha, 0.5, 0.25)
    ties = int((membrane == 1.0).sum())
    assert ties > 20  # the exactness above is tested where it is hardest
    got, _ = srr_pmbc(x, thr, alpha, 0.5, 0.25, engine="toeplitz")
    assert torch.equal(got, expected)


@settings(max_examples=80, deadline=None)
@given(tau=st.floats(0.0, 0.95), tau_r=st.floats(0.0, 0.95), theta=st.floats(0.1, 3.0),
       alpha=st.floats(0.0, 2.0), engine=st.sampled_from(["fft", "toeplitz"]),
       values=st.lists(st.floats(-3.0, 3.0, allow_nan=False), min_size=1, max_size=48))
def test_property_general_floats_agree_up_to_a_near_tie(tau, tau_r, theta, alpha, engine, values):
    """Any parameters: PMBC equals the loop at every step before the first membrane within 1e-9 of
    theta (there the two round-off paths may legitimately decide differently)."""
    x = torch.tensor([values], dtype=F64)
    thr, a = torch.tensor([[theta]], dtype=F64), torch.tensor([[alpha]], dtype=F64)
    expected, membrane = srr_sequential(x, thr, a, tau, tau_r)
    got, info = srr_pmbc(x, thr, a, tau, tau_r, engine=engine)
    near = ((membrane - theta).abs() < 1e-9).nonzero()
    upto = int(near[0, 1]) if len(near) else len(values)
    assert torch.equal(got[:, :upto], expected[:, :upto])
    assert 1 <= info["passes"] <= len(values)


def test_kernels_match_the_recurrence():
    for tau, tau_r in ((0.2, 0.5), (0.6, 0.6), (0.9, 0.3), (0.0, 0.5)):
        decay, refractory = srr_kernels(tau, tau_r, 30)
        q = [0.0]
        for k in range(1, 30):  # Q_k = tau * sum_{n<k} tau^{k-1-n} tau_r^n
            q.append(tau * sum(tau ** (k - 1 - n) * tau_r ** n for n in range(k)))
        assert torch.allclose(refractory, torch.tensor(q, dtype=F64), rtol=1e-12, atol=1e-15)
        assert torch.allclose(decay, torch.tensor([tau ** k for k in range(30)], dtype=F64), rtol=1e-12)
    with pytest.raises(ValueError, match="tau_r"):
        srr_kernels(0.2, 1.0, 4)


def test_mean_passes_small_at_the_default_decay():
    """Spec 2.6/7: N(0,1) inputs, tau 0.2, tau_r 0.5, alpha 0.5: about 3-4 passes per sequence."""
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(20, 1024, generator=generator, dtype=F64)
    thr, alpha = torch.ones(1, 1, dtype=F64), torch.full((1, 1), 0.5, dtype=F64)
    passes = [srr_pmbc(x[i:i + 1], thr, alpha, 0.2, 0.5)[1]["passes"] for i in range(20)]
    assert 2.5 <= sum(passes) / 20 <= 5.0 and max(passes) <= 8


@pytest.mark.parametrize("tau,tau_r,most_undecided", [(0.2, 0.5, 0.01), (0.9, 0.9, 1.0)])
def test_capped_mode_decides_correctly_and_reports_the_rest(tau, tau_r, most_undecided):
    generator = torch.Generator().manual_seed(11)
    x = torch.randn(32, 1024, generator=generator, dtype=F64)
    thr, alpha = torch.ones(32, 1, dtype=F64), torch.full((32, 1), 0.5, dtype=F64)
    exact, _ = srr_sequential(x, thr, alpha, tau, tau_r)
    capped, info = srr_pmbc(x, thr, alpha, tau, tau_r, max_passes=3)
    assert info["passes"] == 3 and 0 < info["undecided"] <= most_undecided
    assert bool((capped <= exact).all())  # a capped spike is a true spike; undecided steps are silent
    assert int((capped != exact).sum()) <= info["undecided"] * x.numel()
    full, info = srr_pmbc(x, thr, alpha, tau, tau_r, max_passes=x.shape[1])
    assert torch.equal(full, exact) and info["undecided"] == 0.0


@pytest.mark.parametrize("form", ["input_scale", "membrane"])
def test_module_modes_agree_and_report(form):
    torch.manual_seed(0)
    neuron = SRRNeuron(6, tau=0.5, tau_r=0.7, threshold_form=form).double()
    with torch.no_grad():
        neuron.log_threshold.uniform_(-0.5, 0.5)
        neuron.alpha_raw.uniform_(-1.0, 1.0)
    x = torch.randn(3, 6, 200, dtype=F64)
    outs = {}
    for mode in ("sequential", "pmbc", "capped"):
        neuron.mode = mode
        outs[mode] = neuron(x)
        assert set(outs[mode].unique().tolist()) <= {0.0, 1.0} and outs[mode].dtype == F64
    assert torch.equal(outs["pmbc"], outs["sequential"])
    assert neuron.last_passes == 3 and 0 < neuron.last_undecided_fraction < 1
    neuron.mode = "pmbc"
    neuron(x)
    assert neuron.last_passes >= 1 and neuron.last_undecided_fraction == 0.0
    assert SRRNeuron.spiking_neuron is True


def test_threshold_forms_give_the_same_spikes_for_matching_alpha():
    torch.manual_seed(1)
    scaled = SRRNeuron(4, threshold_form="input_scale").double()
    membrane = SRRNeuron(4, threshold_form="membrane").double()
    with torch.no_grad():
        scaled.log_threshold.copy_(torch.tensor([-0.5, 0.0, 0.3, 0.8]))
        membrane.log_threshold.copy_(scaled.log_threshold)
        # alpha in membrane units = alpha in threshold units * theta
        target = scaled.alpha * scaled.threshold
        membrane.alpha_raw.copy_(target + torch.log(-torch.expm1(-target)))
    x = 2 * torch.randn(2, 4, 300, dtype=F64)
    assert torch.equal(scaled(x), membrane(x))


@pytest.mark.parametrize("form", ["input_scale", "membrane"])
def test_sequential_and_pmbc_gradients_are_equal(form):
    torch.manual_seed(2)
    neuron = SRRNeuron(5, tau=0.5, tau_r=0.3, threshold_form=form).double()
    x = (0.5 + torch.randn(2, 5, 120, dtype=F64)).requires_grad_()
    w = torch.randn(2, 5, 120, dtype=F64)
    grads = {}
    for mode in ("sequential", "pmbc"):
        neuron.mode = mode
        neuron.zero_grad()
        x.grad = None
        (w * neuron(x)).sum().backward()
        grads[mode] = (x.grad.clone(), neuron.log_threshold.grad.clone(), neuron.alpha_raw.grad.clone())
    for a, b in zip(grads["sequential"], grads["pmbc"]):
        assert b.abs().sum() > 0
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def triangle_primitive(z: torch.Tensor) -> torch.Tensor:
    """G with G'(z) = max(0, 1 - |z|): the function whose gradient the triangle surrogate is."""
    return torch.where(z <= -1, torch.zeros_like(z),
                       torch.where(z <= 0, 0.5 * (1 + z) ** 2, torch.where(z <= 1, 1 - 0.5 * (1 - z) ** 2, torch.ones_like(z))))


@pytest.mark.parametrize("form", ["input_scale", "membrane"])
def test_surrogate_gradient_matches_finite_differences_with_spikes_frozen(form):
    """The neuron's gradient in the input, log theta and alpha_raw equals central differences of
    sum w * G(m - thr), where m comes from a loop with the spikes held fixed (spec section 7)."""
    torch.manual_seed(3)
    H, L, tau, tau_r = 3, 40, 0.5, 0.4
    neuron = SRRNeuron(H, tau=tau, tau_r=tau_r, threshold_form=form).double()
    x = (0.6 + 0.8 * torch.randn(1, H, L, dtype=F64)).requires_grad_()
    w = torch.randn(1, H, L, dtype=F64)
    spikes = neuron(x)
    (w * spikes).sum().backward()
    frozen = spikes.detach()

    def objective(current, log_theta, alpha_raw):
        theta, alpha = log_theta.exp().view(1, H), torch.nn.functional.softplus(alpha_raw).view(1, H)
        if form == "input_scale":
            current, thr = current / theta.unsqueeze(-1), torch.ones_like(theta)
        else:
            thr = theta
        v = r = torch.zeros(1, H, dtype=F64)
        total = torch.zeros((), dtype=F64)
        for t in range(L):
            m = tau * v + current[..., t]
            total = total + (w[..., t] * triangle_primitive(m - thr)).sum()
            r = tau_r * r + alpha * frozen[..., t]
            v = m - thr * frozen[..., t] - r
        return total

    params = [x.detach().clone(), neuron.log_threshold.detach().clone(), neuron.alpha_raw.detach().clone()]
    analytic = [x.grad, neuron.log_threshold.grad, neuron.alpha_raw.grad]
    eps = 1e-6
    for i, (p, g) in enumerate(zip(params, analytic)):
        flat = p.view(-1)
        for j in range(0, flat.numel(), max(1, flat.numel() // 15)):
            plus, minus = [q.clone() for q in params], [q.clone() for q in params]
            plus[i].view(-1)[j] += eps
            minus[i].view(-1)[j] -= eps
            numeric = (objective(*plus) - objective(*minus)) / (2 * eps)
            assert math.isclose(float(g.view(-1)[j]), float(numeric), rel_tol=1e-5, abs_tol=1e-7), (i, j)
    assert neuron.log_threshold.grad.abs().sum() > 0 and neuron.alpha_raw.grad.abs().sum() > 0


@pytest.mark.parametrize("form", ["input_scale", "membrane"])
def test_step_mode_equals_parallel_mode(form):
    torch.manual_seed(4)
    neuron = SRRNeuron(7, tau=0.3, tau_r=0.6, threshold_form=form).double()
    with torch.no_grad():
        neuron.log_threshold.uniform_(-0.3, 0.3)
    x = torch.randn(2, 7, 150, dtype=F64)
    parallel = neuron(x)
    state = neuron.init_state(2, dtype=F64)
    steps = []
    for t in range(150):
        s, state = neuron.step(x[..., t], state)
        steps.append(s)
    assert torch.equal(torch.stack(steps, -1), parallel)
    assert all(tensor.shape == (2, 7) for tensor in state)


def test_bad_inputs_and_options_are_named():
    neuron = SRRNeuron(4)
    with pytest.raises(ValueError, match=r"\(batch, 4, length\)"):
        neuron(torch.randn(2, 5, 10))
    with pytest.raises(ValueError, match="floating"):
        neuron(torch.ones(2, 4, 10, dtype=torch.long))
    with pytest.raises(ValueError, match="mode"):
        SRRNeuron(4, mode="fast")
    with pytest.raises(ValueError, match="tau"):
        SRRNeuron(4, tau=1.2)
    with pytest.raises(ValueError, match="engine"):
        SRRNeuron(4, engine="scan")
