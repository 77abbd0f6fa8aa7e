"""S4 kernel in diagonal-plus-low-rank (DPLR) form: HiPPO-LegS, bilinear steps, Cauchy + Woodbury.

The S4 parameterisation (Gu et al., arXiv 2111.00396): the HiPPO-LegS matrix is unitarily similar to
A = Lambda - P P^* with Lambda diagonal (normal part) and a rank-1 correction P. The N-dimensional real
state is kept as N/2 complex modes; the other N/2 are their complex conjugates. Because the rank-1 term
couples a mode with its conjugate, sums over modes below always run over the full conjugate-augmented
set ("full" vectors: [v, conj(v)]).

Notation: H channels (d_model), N state size (d_state), L length, C kernel channels (2 for a two-sided
kernel). A, P, B are shared by groups of channels (`n_ssm` groups: 1 = one SSM for the whole layer,
H = one per channel); the step size dt and C are per channel.

The kernel is K[c, h, l] = C_c^T A_bar^l B_bar for l < L (bilinear A_bar, B_bar). Its DFT at the L-th
roots of unity z is C~^T (I - z A_bar)^{-1} B_bar with C~ = (I - A_bar^L)^T C, and
(I - z A_bar)^{-1} B_bar = 2 [(2/dt)(1 - z) - (1 + z) A]^{-1} B: a diagonal-plus-rank-1 inverse,
evaluated with the Woodbury identity as four Cauchy-like sums over the modes. The resulting (C, H, L)
kernel is applied with `zoo.nn.fft_conv` (and `zoo.nn.bidirectional_kernel` when two-sided).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.nn.ssm import bidirectional_kernel, fft_conv, register_ssm_parameter


# ---- HiPPO-LegS ---------------------------------------------------------------------------------
def hippo_legs(d_state: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The real HiPPO-LegS matrices (float64, CPU): A (N, N) and B (N,).

    A[n, k] = -sqrt(2n+1) sqrt(2k+1) for n > k, -(n+1) for n = k, 0 for n < k; B[n] = sqrt(2n+1).
    """
    q = torch.sqrt(2 * torch.arange(d_state, dtype=torch.float64, device="cpu") + 1)
    diagonal = torch.arange(1, d_state + 1, dtype=torch.float64, device="cpu")
    A = -torch.tril(q[:, None] * q[None, :], diagonal=-1) - torch.diag(diagonal)
    return A, q.clone()


def hippo_legs_dplr(d_state: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPLR form of HiPPO-LegS: Lambda, P, B (N/2 complex each) and V (N, N/2), float64 on CPU.

    With V_f = [V, conj(V)] (unitary) and the full vectors lambda_f = [Lambda, conj(Lambda)],
    P_f = [P, conj(P)], B_f = [B, conj(B)]:  V_f^* A_legs V_f = diag(lambda_f) - P_f P_f^*  and
    V_f^* B_legs = B_f. Kept modes have positive imaginary part. Raises ValueError for an odd N.
    """
    if d_state % 2 or d_state < 2:
        raise ValueError(f"d_state must be even and >= 2 (modes come in conjugate pairs), got {d_state}")
    A, B = hippo_legs(d_state)
    P = torch.sqrt(torch.arange(d_state, dtype=torch.float64, device="cpu") + 0.5)
    # A + P P^T = -I/2 + (skew-symmetric): a normal matrix. -i * skew is Hermitian, so eigh applies.
    skew = A + P[:, None] * P[None, :] + 0.5 * torch.eye(d_state, dtype=torch.float64, device="cpu")
    # skew V = i w V with w ascending; w comes in pairs +-w, none zero (smallest |w| ~ 0.19 at N = 512)
    w, V = torch.linalg.eigh(-1j * skew.to(torch.complex128))
    V = V[:, d_state // 2:]  # the N/2 modes with w > 0
    lam = torch.complex(torch.full_like(w[d_state // 2:], -0.5), w[d_state // 2:])
    Vh = V.conj().T
    return lam, Vh @ P.to(torch.complex128), Vh @ B.to(torch.complex128), V


def _full(v: torch.Tensor) -> torch.Tensor:
    """Conjugate-augmented vector along the last axis: [v, conj(v)]."""
    return torch.cat([v, v.conj()], dim=-1)


# ---- the kernel ---------------------------------------------------------------------------------
class DPLRKernel(nn.Module):
    """S4-DPLR convolution kernel (C, H, L) and the recurrence it comes from.

    Parameters (complex ones stored as real pairs for safetensors): `log_A_real`, `A_imag` (n_ssm, N/2)
    with Re Lambda = -exp(log_A_real) < 0 so A stays stable; `P`, `B` (n_ssm, N/2, 2); `C`
    (channels, H, N/2, 2), complex standard normal; `inv_dt` (H,), dt = softplus(inv_dt), initialised
    log-uniform in [dt_min, dt_max]. Optimizer rules: A, P, B at `lr` with weight decay 0; dt at `dt_lr`
    (None: the global lr) with weight decay 0; C an ordinary parameter unless `c_lr` is given.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        channels: int = 1,
        n_ssm: int | None = 1,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        lr: float | None = 1e-3,
        dt_lr: float | None = None,
        c_lr: float | None = None,
    ):
        super().__init__()
        n_ssm = d_model if n_ssm is None else n_ssm
        if n_ssm < 1 or d_model % n_ssm:
            raise ValueError(f"n_ssm must divide d_model={d_model} (1: one SSM per layer, None or "
                             f"d_model: one per channel), got {n_ssm}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        self.d_model, self.d_state, self.channels, self.n_ssm = d_model, d_state, channels, n_ssm
        lam, P, B, _ = hippo_legs_dplr(d_state)
        lam, P, B = (t.to(torch.complex64).expand(n_ssm, -1) for t in (lam, P, B))  # (n_ssm, N/2)
        dt = torch.exp(torch.rand(d_model) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        inv_dt = dt + torch.log(-torch.expm1(-dt))  # inverse softplus
        C = torch.randn(channels, d_model, d_state // 2, dtype=torch.cfloat)
        register_ssm_parameter(self, "log_A_real", torch.log(-lam.real).clone(), lr)
        register_ssm_parameter(self, "A_imag", lam.imag.clone(), lr)
        register_ssm_parameter(self, "P", torch.view_as_real(P).clone(), lr)
        register_ssm_parameter(self, "B", torch.view_as_real(B).clone(), lr)
        register_ssm_parameter(self, "inv_dt", inv_dt, dt_lr)
        if c_lr is None:
            self.C = nn.Parameter(torch.view_as_real(C))
        else:
            register_ssm_parameter(self, "C", torch.view_as_real(C), c_lr)

    # ---- continuous and discrete systems ------------------------------------------------------
    def continuous(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """dt (H,), Lambda, P, B (H, N/2) complex, expanded from the n_ssm groups, and C (C, H, N/2)."""
        repeat = self.d_model // self.n_ssm
        lam = torch.complex(-torch.exp(self.log_A_real), self.A_imag)
        P, B = torch.view_as_complex(self.P), torch.view_as_complex(self.B)
        lam, P, B = (t.repeat_interleave(repeat, dim=0) for t in (lam, P, B))  # (H, N/2)
        return F.softplus(self.inv_dt), lam, P, B, torch.view_as_complex(self.C)

    def dense(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Full conjugate-augmented discrete system: A_bar (H, N, N), B_bar (H, N), C (C, H, N).

        A = diag(lambda_f) - P_f P_f^*, bilinear: A_bar = (I - dt/2 A)^{-1}(I + dt/2 A) = 2 M^{-1} - I
        with M = I - dt/2 A = E + dt/2 P_f P_f^* (E diagonal), inverted in O(N^2) by Sherman-Morrison;
        B_bar = M^{-1} dt B. Output y = Re(C_f^T x) (the imaginary part is zero).
        """
        dt, lam, P, B, C = self.continuous()
        P_f = _full(P)
        alpha = (dt / 2).to(lam.dtype)[:, None]  # (H, 1)
        inv_e = 1 / (1 - alpha * _full(lam))  # (H, N)
        denom = 1 + alpha * (P_f.conj() * P_f * inv_e).sum(-1, keepdim=True)  # (H, 1)
        left, right = P_f * inv_e, P_f.conj() * inv_e  # (H, N) each
        M_inv = torch.diag_embed(inv_e) - (alpha / denom).unsqueeze(-1) * left.unsqueeze(-1) * right.unsqueeze(-2)
        eye = torch.eye(self.d_state, dtype=M_inv.dtype, device=M_inv.device)
        A_bar = 2 * M_inv - eye
        B_bar = torch.einsum("hnm,hm->hn", M_inv, dt.to(lam.dtype)[:, None] * _full(B))
        return A_bar, B_bar, _full(C)

    # ---- parallel mode ------------------------------------------------------------------------
    def forward(self, L: int) -> torch.Tensor:
        """The kernel K (C, H, L), K[c, h, l] = Re(C_f^T A_bar^l B_bar). Raises ValueError for L < 1."""
        if L < 1:
            raise ValueError(f"kernel length must be >= 1, got {L}")
        dt, lam, P, B, C = self.continuous()
        half_n = self.d_state // 2
        # C~ = (I - A_bar^L)^T C makes the L-point DFT of the infinite response exactly that of the
        # first L kernel entries (the tail wraps around and cancels). A_bar^L by repeated squaring.
        A_bar, _, C_f = self.dense()
        C_tilde = C - torch.einsum("chn,hnm->chm", C_f, torch.linalg.matrix_power(A_bar, L))[..., :half_n]
        # Frequencies z_k = exp(-2 pi i k / L), k = 0..L//2 (real kernel: the rest are conjugates).
        angle = -2 * math.pi * torch.arange(L // 2 + 1, dtype=torch.float64, device=dt.device) / L
        z = torch.polar(torch.ones_like(angle), angle).to(lam.dtype)  # (L',)
        # d_n(z) = (2/dt)(1 - z) - (1 + z) lambda_n: (1+z) times the usual Cauchy denominator g(z) - lambda,
        # finite at z = -1 where g(z) = (2/dt)(1-z)/(1+z) is not.
        lam_f = _full(lam)
        inv_d = 1 / ((2 / dt).to(lam.dtype)[:, None, None] * (1 - z) - lam_f.unsqueeze(-1) * (1 + z))  # (H, N, L')
        Ct_f, P_f, B_f = _full(C_tilde), _full(P), _full(B)
        k_cb = torch.einsum("chn,hnl->chl", Ct_f * B_f, inv_d)
        k_cp = torch.einsum("chn,hnl->chl", Ct_f * P_f, inv_d)
        k_pb = torch.einsum("hn,hnl->hl", P_f.conj() * B_f, inv_d)
        k_pp = torch.einsum("hn,hnl->hl", P_f.conj() * P_f, inv_d)
        # Woodbury: (D + (1+z) P P^*)^{-1} = D^{-1} - (1+z) D^{-1} P P^* D^{-1} / (1 + (1+z) P^* D^{-1} P)
        one_z = 1 + z
        k_hat = 2 * (k_cb - one_z * k_cp * k_pb / (1 + one_z * k_pp))  # (C, H, L')
        return torch.fft.irfft(k_hat, n=L)  # (C, H, L)

    # ---- recurrent mode -----------------------------------------------------------------------
    def init_state(self, batch: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        """Zero state (B, H, N/2) complex (the kept half of the conjugate-symmetric state)."""
        cdtype = torch.cdouble if dtype == torch.float64 else torch.cfloat
        return torch.zeros(batch, self.d_model, self.d_state // 2, dtype=cdtype, device=device)

    def step(self, u_t: torch.Tensor, state: torch.Tensor, channel: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """x_t = A_bar x_{t-1} + B_bar u_t, y_t = Re(C_f^T x_t), with the DPLR structure: O(H N).

        u_t (B, H) real, state (B, H, N/2) complex. The rank-1 products P^* x over the full
        conjugate-augmented state are 2 Re(sum conj(P) x) over the kept half.
        """
        dt, lam, P, B, C = self.continuous()
        dt = dt.to(state.real.dtype)
        lam, P, B, C = (t.to(state.dtype) for t in (lam, P, B, C))
        half = (dt / 2)[:, None]  # (H, 1)
        Px = 2 * (P.conj() * state).sum(-1).real  # (B, H)
        v = state + half * (lam * state - P * Px.unsqueeze(-1)) + (dt[:, None] * B) * u_t.unsqueeze(-1)
        # (I - dt/2 A)^{-1} v = (E + dt/2 P P^*)^{-1} v with E = I - dt/2 Lambda: Sherman-Morrison.
        e = 1 - half * lam
        Pv = 2 * (P.conj() * v / e).sum(-1).real  # (B, H)
        PP = 2 * (P.conj() * P / e).sum(-1).real  # (H,)
        state = v / e - (P / e) * (half[:, 0] * Pv / (1 + half[:, 0] * PP)).unsqueeze(-1)
        y = 2 * (C[channel] * state).sum(-1).real
        return y.to(u_t.dtype), state


# ---- the convolution layer ----------------------------------------------------------------------
class DPLRConv(nn.Module):
    """y = K * u + D u with the S4-DPLR kernel, (B, H, L) -> (B, H, L); two-sided when bidirectional.

    A two-sided layer computes y[t] = sum_m k0[m] u[t-m] + sum_m k1[m] u[t+1+m] + D u[t] and has no
    step mode. D (H,) ~ N(0, 1).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        bidirectional: bool = False,
        n_ssm: int | None = 1,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        lr: float | None = 1e-3,
        dt_lr: float | None = None,
        c_lr: float | None = None,
    ):
        super().__init__()
        self.bidirectional = bidirectional
        self.kernel = DPLRKernel(d_model, d_state, 2 if bidirectional else 1, n_ssm, dt_min, dt_max,
                                 lr, dt_lr, c_lr)
        self.D = nn.Parameter(torch.randn(d_model))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        k = self.kernel(u.shape[-1])  # (C, H, L)
        k = bidirectional_kernel(k) if self.bidirectional else k[0]
        return fft_conv(u, k.to(u.dtype)) + self.D.to(u.dtype).unsqueeze(-1) * u

    def init_state(self, batch: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        self._require_causal()
        return self.kernel.init_state(batch, dtype, device)

    def step(self, u_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u_t (B, H) -> y_t (B, H); O(H N) per step."""
        self._require_causal()
        y, state = self.kernel.step(u_t, state)
        return y + self.D.to(u_t.dtype) * u_t, state

    def _require_causal(self) -> None:
        if self.bidirectional:
            raise RuntimeError(
                "step mode needs a causal layer: this one has a two-sided kernel (its output at t depends "
                "on inputs after t); build it with bidirectional=False for streaming")
