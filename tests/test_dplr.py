"""S4-DPLR kernel (zoo.nn.dplr) against independent dense float64 references."""

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.nn import DPLRConv, DPLRKernel, hippo_legs, hippo_legs_dplr


def legs_reference(N):
    """HiPPO-LegS written out entry by entry (independent of zoo.nn.dplr.hippo_legs)."""
    A = torch.zeros(N, N, dtype=torch.float64)
    for n in range(N):
        for k in range(N):
            if n > k:
                A[n, k] = -math.sqrt(2 * n + 1) * math.sqrt(2 * k + 1)
            elif n == k:
                A[n, k] = -(n + 1)
    B = torch.tensor([math.sqrt(2 * n + 1) for n in range(N)], dtype=torch.float64)
    return A, B


def dense_reference(kernel):
    """Dense conjugate-augmented discrete system built from the raw parameters with a dense solve."""
    H, N = kernel.d_model, kernel.d_state
    rep = H // kernel.n_ssm
    lam = torch.complex(-torch.exp(kernel.log_A_real), kernel.A_imag).detach().repeat_interleave(rep, 0)
    P = torch.view_as_complex(kernel.P.detach()).repeat_interleave(rep, 0)
    B = torch.view_as_complex(kernel.B.detach()).repeat_interleave(rep, 0)
    C = torch.view_as_complex(kernel.C.detach())
    dt = F.softplus(kernel.inv_dt.detach())
    A_bars, B_bars = [], []
    eye = torch.eye(N, dtype=torch.complex128)
    for h in range(H):
        Pf = torch.cat([P[h], P[h].conj()])
        A = torch.diag(torch.cat([lam[h], lam[h].conj()])) - torch.outer(Pf, Pf.conj())
        back = eye - dt[h] / 2 * A
        A_bars.append(torch.linalg.solve(back, eye + dt[h] / 2 * A))
        B_bars.append(torch.linalg.solve(back, dt[h] * torch.cat([B[h], B[h].conj()])))
    return torch.stack(A_bars), torch.stack(B_bars), torch.cat([C, C.conj()], -1)


def impulse_response(A_bar, B_bar, C_f, L):
    """K[c, h, l] = C_f^T A_bar^l B_bar by iterating the recurrence; also returns its imaginary part."""
    x, out = B_bar.clone(), []
    for _ in range(L):
        out.append(torch.einsum("chn,hn->ch", C_f, x))
        x = torch.einsum("hnm,hm->hn", A_bar, x)
    K = torch.stack(out, -1)
    return K.real, K.imag


def perturbed_kernel(H, N, channels, n_ssm, dt_min=1e-4, dt_max=1e-2):
    """A float64 kernel whose every parameter is moved off the LegS init (the general DPLR case)."""
    k = DPLRKernel(H, N, channels, n_ssm, dt_min=dt_min, dt_max=dt_max).double()
    with torch.no_grad():
        for p in (k.log_A_real, k.A_imag, k.P, k.B):
            p.add_(0.3 * torch.randn_like(p) * p.abs().clamp(min=0.1))
    return k


@pytest.mark.parametrize("N", [2, 8, 64])
def test_dplr_form_is_unitarily_similar_to_hippo_legs(N):
    A_legs, B_legs = legs_reference(N)
    A, B = hippo_legs(N)
    assert torch.allclose(A, A_legs, rtol=1e-15, atol=0) and torch.allclose(B, B_legs, rtol=1e-15, atol=0)
    lam, P, B_h, V = hippo_legs_dplr(N)
    V_f = torch.cat([V, V.conj()], 1)
    assert torch.allclose(V_f.conj().T @ V_f, torch.eye(N, dtype=V_f.dtype), atol=1e-12)  # unitary
    P_f = torch.cat([P, P.conj()])
    A_f = torch.diag(torch.cat([lam, lam.conj()])) - torch.outer(P_f, P_f.conj())
    assert torch.allclose(V_f @ A_f @ V_f.conj().T, A_legs.to(V_f.dtype), atol=1e-11 * N)
    assert torch.allclose(V_f.conj().T @ B_legs.to(V_f.dtype), torch.cat([B_h, B_h.conj()]), atol=1e-12 * N)
    assert torch.allclose(lam.real, torch.full_like(lam.real, -0.5)) and (lam.imag > 0).all()


@pytest.mark.parametrize("n_ssm,channels,L", [(1, 2, 4096), (None, 1, 4096), (1, 1, 1), (3, 2, 17), (None, 2, 100)])
def test_kernel_matches_dense_float64_recurrence(n_ssm, channels, L):
    k = perturbed_kernel(H=3, N=8, channels=channels, n_ssm=n_ssm)
    K = k(L)
    ref, imag = impulse_response(*dense_reference(k), L)
    assert K.shape == (channels, 3, L)
    assert imag.abs().max() < 1e-10 * ref.abs().max()  # conjugate symmetry: the reference is real
    assert ((K - ref).norm() / ref.norm()).item() < 1e-8


def test_kernel_at_legs_init_equals_the_real_legs_system():
    """Loaded with the exact float64 LegS decomposition and C = V^T c, the kernel is that of the real
    bilinear HiPPO-LegS system (A_legs, B_legs, c) computed without any complex arithmetic."""
    N, H, L = 8, 2, 512
    lam, P, B, V = hippo_legs_dplr(N)
    k = DPLRKernel(H, N, channels=1, n_ssm=1).double()
    c_real = torch.randn(H, N, dtype=torch.float64)
    with torch.no_grad():
        k.log_A_real.copy_(torch.log(-lam.real)[None])
        k.A_imag.copy_(lam.imag[None])
        k.P.copy_(torch.view_as_real(P)[None])
        k.B.copy_(torch.view_as_real(B)[None])
        k.C.copy_(torch.view_as_real(c_real.to(V.dtype) @ V)[None])  # C_h = V^T c
    dt = F.softplus(k.inv_dt.detach())
    A_legs, B_legs = legs_reference(N)
    eye = torch.eye(N, dtype=torch.float64)
    K = k(L)[0]
    for h in range(H):
        back = eye - dt[h] / 2 * A_legs
        A_bar = torch.linalg.solve(back, eye + dt[h] / 2 * A_legs)
        x, ref = torch.linalg.solve(back, dt[h] * B_legs), []
        for _ in range(L):
            ref.append(c_real[h] @ x)
            x = A_bar @ x
        ref = torch.stack(ref)
        assert ((K[h] - ref).norm() / ref.norm()).item() < 1e-8


def test_two_sided_conv_equals_the_explicit_sums():
    """y[t] = sum_m k0[m] u[t-m] + sum_m k1[m] u[t+1+m] + D u[t]: the forward part is the recurrence run
    left to right, the backward part the second channel's recurrence on the reversed input, shifted."""
    L, H = 300, 3
    conv = DPLRConv(H, 6, bidirectional=True, dt_min=1e-3, dt_max=1e-1).double()
    u = torch.randn(2, H, L, dtype=torch.float64)
    A_bar, B_bar, C_f = dense_reference(conv.kernel)

    def run(channel, seq):  # (B, H, L) -> causal recurrence outputs (B, H, L)
        x = torch.zeros(seq.shape[0], H, 6, dtype=torch.complex128)
        ys = []
        for t in range(seq.shape[-1]):
            x = torch.einsum("hnm,bhm->bhn", A_bar, x) + B_bar * seq[..., t, None]
            ys.append(torch.einsum("hn,bhn->bh", C_f[channel], x).real)
        return torch.stack(ys, -1)

    forward = run(0, u)
    backward = F.pad(run(1, u.flip(-1)).flip(-1)[..., 1:], (0, 1))  # output t sees u[t+1:]
    ref = forward + backward + conv.D.detach()[:, None] * u
    out = conv(u)
    assert ((out - ref).norm() / ref.norm()).item() < 1e-10


@pytest.mark.parametrize("n_ssm", [1, None])
def test_step_mode_equals_parallel_mode(n_ssm):
    conv = DPLRConv(4, 8, bidirectional=False, n_ssm=n_ssm).double()
    with torch.no_grad():  # off the init, so the rank-1 term and per-group parameters all matter
        conv.kernel.P.mul_(1 + 0.2 * torch.randn_like(conv.kernel.P))
    u = torch.randn(3, 4, 200, dtype=torch.float64)
    y = conv(u)
    state, ys = conv.init_state(3, torch.float64), []
    for t in range(u.shape[-1]):
        y_t, state = conv.step(u[..., t], state)
        ys.append(y_t)
    assert ((torch.stack(ys, -1) - y).norm() / y.norm()).item() < 1e-10


def test_float32_kernel_is_close_to_float64():
    k = DPLRKernel(16, 32, channels=2)
    K32 = k(1024)
    K64 = k.double()(1024)
    assert K32.dtype == torch.float32
    assert ((K32.double() - K64).norm() / K64.norm()).item() < 1e-4


def test_gradients_of_the_kernel_match_finite_differences():
    k = perturbed_kernel(H=2, N=4, channels=2, n_ssm=1, dt_min=1e-2, dt_max=1e-1)
    names = ["log_A_real", "A_imag", "P", "B", "inv_dt", "C"]
    params = tuple(getattr(k, n).detach().clone().requires_grad_() for n in names)

    def kernel(*values):
        return torch.func.functional_call(k, dict(zip(names, values)), (12,))

    assert torch.autograd.gradcheck(kernel, params, eps=1e-6, atol=1e-6)


def test_optimizer_rules_and_sharing():
    k = DPLRKernel(6, 8, channels=1, n_ssm=1, lr=1e-3)
    for name in ("log_A_real", "A_imag", "P", "B"):
        assert getattr(k, name)._optim == {"weight_decay": 0.0, "lr": 1e-3}
        assert getattr(k, name).shape[0] == 1  # shared by the layer's 6 channels
    assert k.inv_dt._optim == {"weight_decay": 0.0}  # global lr
    assert not hasattr(k.C, "_optim") and k.C.shape == (1, 6, 4, 2)
    every = DPLRKernel(6, 8, n_ssm=None, lr=1e-3, dt_lr=1e-3, c_lr=1e-3)
    assert every.P.shape == (6, 4, 2)
    assert every.inv_dt._optim["lr"] == 1e-3 and every.C._optim["lr"] == 1e-3


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="d_state"):
        DPLRKernel(4, 7)
    with pytest.raises(ValueError, match="n_ssm"):
        DPLRKernel(4, 8, n_ssm=3)
    with pytest.raises(ValueError, match="length"):
        DPLRKernel(4, 8)(0)
    conv = DPLRConv(4, 8, bidirectional=True)
    with pytest.raises(RuntimeError, match="two-sided"):
        conv.init_state(1)
