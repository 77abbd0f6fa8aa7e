"""Diagonal state space layer (S4D): kernel, FFT long convolution and recurrent step mode.

This file is the only place where the S4D kernel and the FFT convolution live; every architecture
plugin reuses it. Notation follows the S4D paper (Gu et al., arXiv 2206.11893):
H channels (d_model), N state size (d_state, stored as N/2 complex modes in conjugate pairs),
L sequence length, C kernel channels (2 when bidirectional).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

SSM_INITS = ("lin", "inv", "real")
DISCRETIZATIONS = ("zoh", "bilinear")


def register_ssm_parameter(module: nn.Module, name: str, tensor: torch.Tensor, lr: float | None) -> None:
    """Register an SSM parameter with its optimizer rule (own lr, no weight decay).

    `lr == 0` freezes the tensor as a buffer, as in the S4 code base. The rule travels on the
    parameter as `_optim`, from which `zoo.nn.optim.param_groups` builds AdamW groups.
    """
    if lr == 0.0:
        module.register_buffer(name, tensor)
        return
    param = nn.Parameter(tensor)
    optim = {"weight_decay": 0.0}
    if lr is not None:
        optim["lr"] = lr
    param._optim = optim  # type: ignore[attr-defined]
    module.register_parameter(name, param)


def init_diagonal_A(init: str, d_state: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of the N/2 diagonal modes for S4D-Lin, S4D-Inv or S4D-Real."""
    n = torch.arange(d_state // 2, dtype=torch.float64)
    if init == "lin":
        real, imag = torch.full_like(n, -0.5), math.pi * n
    elif init == "inv":
        real, imag = torch.full_like(n, -0.5), (d_state / math.pi) * (d_state / (2 * n + 1) - 1)
    elif init == "real":
        real, imag = -(n + 1), torch.zeros_like(n)
    else:
        raise ValueError(f"ssm_init must be one of {SSM_INITS}, got {init!r}")
    return real, imag


class DiagonalSSMKernel(nn.Module):
    """Generates the S4D convolution kernel K (C, H, L) and the discrete recurrence it comes from.

    Parameters: log_dt (H,), A as log(-Re A) and Im A (H, N/2), C complex (C, H, N/2) stored as
    real pairs so that safetensors can hold it. B is fixed to 1 (absorbed into C, minimal S4D).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        channels: int = 1,
        init: str = "lin",
        discretization: str = "zoh",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        lr: float | None = 1e-3,
    ):
        super().__init__()
        if d_state % 2:
            raise ValueError(f"d_state must be even (modes come in conjugate pairs), got {d_state}")
        if discretization not in DISCRETIZATIONS:
            raise ValueError(f"discretization must be one of {DISCRETIZATIONS}, got {discretization!r}")
        self.d_model, self.d_state, self.channels = d_model, d_state, channels
        self.discretization = discretization
        log_dt = torch.rand(d_model) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        real, imag = init_diagonal_A(init, d_state)
        real = real.float().expand(d_model, -1).clone()  # (H, N/2)
        imag = imag.float().expand(d_model, -1).clone()  # (H, N/2)
        C = torch.randn(channels, d_model, d_state // 2, dtype=torch.cfloat)
        register_ssm_parameter(self, "log_dt", log_dt, lr)
        register_ssm_parameter(self, "log_A_real", torch.log(-real), lr)
        register_ssm_parameter(self, "A_imag", imag, lr)
        self.C = nn.Parameter(torch.view_as_real(C))  # (C, H, N/2, 2)

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Discretised diagonal system: dtA (H, N/2), A_bar (H, N/2), C*B_bar (C, H, N/2)."""
        dt = torch.exp(self.log_dt).unsqueeze(-1)  # (H, 1)
        A = torch.complex(-torch.exp(self.log_A_real), self.A_imag)  # (H, N/2)
        dtA = dt * A
        if self.discretization == "zoh":
            A_bar = torch.exp(dtA)
            B_bar = (A_bar - 1) / A
        else:  # bilinear
            A_bar = (1 + dtA / 2) / (1 - dtA / 2)
            B_bar = dt / (1 - dtA / 2)
        C = torch.view_as_complex(self.C)
        return dtA, A_bar, C * B_bar

    def forward(self, L: int) -> torch.Tensor:
        """K[c, h, l] = 2 Re sum_n (C B_bar)[c,h,n] A_bar[h,n]^l, shape (C, H, L)."""
        dtA, A_bar, CB = self.discrete()
        if self.discretization == "zoh":
            log_A_bar = dtA
        else:
            log_A_bar = torch.log(A_bar)
        arange = torch.arange(L, device=dtA.device, dtype=dtA.real.dtype)
        vandermonde = torch.exp(log_A_bar.unsqueeze(-1) * arange)  # (H, N/2, L)
        return 2 * torch.einsum("chn,hnl->chl", CB, vandermonde).real


def fft_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Causal long convolution y[t] = sum_{s<=t} k[t-s] u[s] by FFT, padded to 2L (no wrap-around).

    u: (B, H, L); k: (H, L) causal, or (H, 2L) from `bidirectional_kernel`. Returns (B, H, L).
    """
    L = u.shape[-1]
    n = 2 * L
    k_f = torch.fft.rfft(k, n=n)  # (H, L+1)
    u_f = torch.fft.rfft(u, n=n)  # (B, H, L+1)
    return torch.fft.irfft(u_f * k_f, n=n)[..., :L]


def bidirectional_kernel(k: torch.Tensor) -> torch.Tensor:
    """Merge forward and backward kernels (2, H, L) into one two-sided kernel (H, 2L).

    k[0] sits at lags 0..L-1; k[1] reversed fills positions L..2L-1, which the circular FFT product
    applies to future inputs: output t receives k[1][m] * u[t+1+m] (the S4 off-by-one).
    """
    k0, k1 = k[0], k[1]
    return torch.nn.functional.pad(k0, (0, k0.shape[-1])) + torch.nn.functional.pad(k1.flip(-1), (k1.shape[-1], 0))


class SSMConv(nn.Module):
    """The S4D token-mixing operator: y = K * u + D u, in parallel (FFT) or step mode.

    Input and output (B, H, L). Bidirectional layers have no step mode (they need the future).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        bidirectional: bool = False,
        init: str = "lin",
        discretization: str = "zoh",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        lr: float | None = 1e-3,
    ):
        super().__init__()
        self.bidirectional = bidirectional
        self.kernel = DiagonalSSMKernel(
            d_model, d_state, channels=2 if bidirectional else 1, init=init,
            discretization=discretization, dt_min=dt_min, dt_max=dt_max, lr=lr,
        )
        self.D = nn.Parameter(torch.randn(d_model))

    @classmethod
    def from_config(cls, config) -> "SSMConv":
        """The SSM of a `zoo.ModelConfig` (d_model, d_state, bidirectional, ssm_init, ...)."""
        c = config
        return cls(c.d_model, c.d_state, c.bidirectional, c.ssm_init, c.discretization, c.dt_min, c.dt_max, c.ssm_lr)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        L = u.shape[-1]
        k = self.kernel(L)  # (C, H, L)
        k = bidirectional_kernel(k) if self.bidirectional else k[0]
        return fft_conv(u, k.to(u.dtype)) + self.D.to(u.dtype).unsqueeze(-1) * u

    def init_state(self, batch: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        """Zero state (B, H, N/2) complex."""
        self._require_causal()
        cdtype = torch.cdouble if dtype == torch.float64 else torch.cfloat
        return torch.zeros(batch, self.kernel.d_model, self.kernel.d_state // 2, dtype=cdtype, device=device)

    def step(self, u_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of x_t = A_bar x_{t-1} + u_t, y_t = 2 Re(C B_bar x_t) + D u_t.

        u_t: (B, H); state (B, H, N/2). O(H N) per step, independent of the position.
        """
        self._require_causal()
        _, A_bar, CB = self._discrete(state.dtype)
        state = A_bar * state + u_t.unsqueeze(-1)
        y = 2 * (CB[0] * state).sum(-1).real + self.D.to(u_t.dtype) * u_t
        return y.to(u_t.dtype), state

    def _discrete(self, cdtype: torch.dtype):
        # recomputed every step (O(H N), like the step itself) so gradients reach the SSM parameters
        dtA, A_bar, CB = self.kernel.discrete()
        return dtA, A_bar.to(cdtype), CB.to(cdtype)

    def _require_causal(self) -> None:
        if self.bidirectional:
            raise RuntimeError(
                "step mode needs a causal layer: this one is bidirectional (its output at t depends on "
                "inputs after t); build the model with bidirectional=False for streaming"
            )
