"""The shared SSM core against independent references: a naive float64 recurrence, direct sums."""

import math

import numpy as np
import pytest
import torch

from zoo.nn import DiagonalSSMKernel, SSMConv, bidirectional_kernel, fft_conv, param_groups
from zoo.nn.surrogate import spike


def naive_recurrence(kernel: DiagonalSSMKernel, u: np.ndarray, channel: int = 0) -> np.ndarray:
    """y_t = 2 Re(C x_t), x_t = A_bar x_{t-1} + B_bar u_t, discretised here from the raw parameters."""
    dt = np.exp(kernel.log_dt.detach().double().numpy())[:, None]  # (H, 1)
    A = -np.exp(kernel.log_A_real.detach().double().numpy()) + 1j * kernel.A_imag.detach().double().numpy()
    C = kernel.C.detach().double().numpy()
    C = C[..., 0] + 1j * C[..., 1]  # (C, H, N/2)
    if kernel.discretization == "zoh":
        A_bar = np.exp(dt * A)
        B_bar = (A_bar - 1) / A
    else:
        A_bar = (1 + dt * A / 2) / (1 - dt * A / 2)
        B_bar = dt / (1 - dt * A / 2)
    Bsz, H, L = u.shape
    x = np.zeros((Bsz, H, A.shape[-1]), dtype=complex)
    y = np.empty((Bsz, H, L))
    for t in range(L):
        x = A_bar * x + B_bar * u[:, :, t, None]
        y[:, :, t] = 2 * (C[channel] * x).sum(-1).real
    return y


@pytest.mark.parametrize("init", ["lin", "inv", "real"])
@pytest.mark.parametrize("disc", ["zoh", "bilinear"])
@pytest.mark.parametrize("L", [1, 257, 4096])
def test_kernel_fft_conv_matches_naive_recurrence(init, disc, L):
    torch.manual_seed(1)
    kernel = DiagonalSSMKernel(3, 8, init=init, discretization=disc).double()
    u = torch.randn(2, 3, L, dtype=torch.float64)
    y = fft_conv(u, kernel(L)[0]).detach()
    ref = naive_recurrence(kernel, u.numpy())
    rel = np.abs(y.numpy() - ref).max() / np.abs(ref).max()
    assert rel < 1e-10


def test_kernel_shape_and_conjugate_pairs():
    kernel = DiagonalSSMKernel(4, 16, channels=2)
    k = kernel(100)
    assert k.shape == (2, 4, 100) and k.dtype == torch.float32
    with pytest.raises(ValueError, match="d_state must be even"):
        DiagonalSSMKernel(4, 7)


def test_fft_conv_equals_direct_causal_convolution():
    torch.manual_seed(2)
    u, k = torch.randn(2, 3, 50, dtype=torch.float64), torch.randn(3, 50, dtype=torch.float64)
    direct = torch.zeros_like(u)
    for t in range(50):
        for s in range(t + 1):
            direct[..., t] += k[:, t - s] * u[..., s]
    assert torch.allclose(fft_conv(u, k), direct, atol=1e-12)


def test_bidirectional_kernel_adds_the_anticausal_part_with_the_s4_offset():
    torch.manual_seed(3)
    L = 40
    k = torch.randn(2, 3, L, dtype=torch.float64)
    u = torch.randn(2, 3, L, dtype=torch.float64)
    y = fft_conv(u, bidirectional_kernel(k))
    ref = torch.zeros_like(u)
    for t in range(L):
        for m in range(t + 1):
            ref[..., t] += k[0, :, m] * u[..., t - m]
        for m in range(L - t - 1):
            ref[..., t] += k[1, :, m] * u[..., t + 1 + m]
    assert torch.allclose(y, ref, atol=1e-10)


@pytest.mark.parametrize("disc", ["zoh", "bilinear"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_step_mode_equals_convolution(disc, dtype, tol):
    torch.manual_seed(4)
    layer = SSMConv(4, 16, discretization=disc).to(dtype)
    u = torch.randn(2, 4, 300, dtype=dtype)
    y = layer(u).detach()
    state = layer.init_state(2, dtype=dtype)
    steps = []
    for t in range(u.shape[-1]):
        y_t, state = layer.step(u[..., t], state)
        steps.append(y_t)
    y_step = torch.stack(steps, -1)
    assert state.shape == (2, 4, 8)  # O(H N) state, independent of the position
    assert ((y_step - y).abs().max() / y.abs().max()) < tol


def test_bidirectional_layer_refuses_step_mode():
    layer = SSMConv(4, 8, bidirectional=True)
    with pytest.raises(RuntimeError, match="bidirectional"):
        layer.init_state(1)


def test_bidirectional_output_depends_on_the_future_causal_does_not():
    torch.manual_seed(5)
    u = torch.randn(1, 4, 64, dtype=torch.float64)
    u2 = u.clone()
    u2[..., 40:] += 1.0
    for bidir in (False, True):
        layer = SSMConv(4, 8, bidirectional=bidir).double()
        changed = (layer(u) - layer(u2))[..., :40].abs().max()
        assert (changed > 1e-6) == bidir


@pytest.mark.parametrize("name,formula", [
    ("atan", lambda x: 1 / (1 + (math.pi * x) ** 2)),
    ("fast_sigmoid", lambda x: 1 / (1 + 25 * x.abs()) ** 2),
    ("triangle", lambda x: torch.clamp(1 - x.abs(), min=0)),
    ("straight_through", lambda x: (x.abs() <= 1).double()),
])
def test_surrogates_forward_binary_and_gradient_formula(name, formula):
    torch.manual_seed(6)
    x = torch.randn(1000, dtype=torch.float64, requires_grad=True)
    s = spike(x, name)
    assert set(s.detach().unique().tolist()) <= {0.0, 1.0}
    s.sum().backward()
    assert torch.allclose(x.grad, formula(x.detach()), atol=1e-14)


def test_unknown_surrogate_is_a_clear_error():
    with pytest.raises(ValueError, match="surrogate must be one of"):
        spike(torch.zeros(3), "sigmoid")


def test_param_groups_give_ssm_parameters_their_own_rule():
    layer = SSMConv(4, 8, lr=1e-3)
    groups = param_groups(layer, lr=0.01, weight_decay=0.05)
    ssm = {id(p) for p in (layer.kernel.log_dt, layer.kernel.log_A_real, layer.kernel.A_imag)}
    (ssm_group,) = [g for g in groups if {id(p) for p in g["params"]} == ssm]
    assert ssm_group["lr"] == 1e-3 and ssm_group["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in groups) == len(list(layer.parameters()))
    frozen = SSMConv(4, 8, lr=0.0)
    assert "log_dt" in dict(frozen.kernel.named_buffers())
