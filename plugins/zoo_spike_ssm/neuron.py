"""The SRR neuron of SPikE-SSM (soft reset + refractory) and its parallel solver PMBC.

Spec: shared/specs/spike-ssm.md sections 1-2. Per channel, along time t (the reference loop):

    m_t = tau v_{t-1} + I_t                 leaky charge
    s_t = 1[m_t >= theta]                   spike (fires exactly at threshold)
    r_t = tau_r r_{t-1} + alpha s_t         refractory trace, excited by the neuron's own spikes
    v_t = m_t - theta s_t - r_t             soft reset plus refractory inhibition

Unrolled, m_t = X_t - sum_{j<t} K_{t-j} s_j with the reset-free drive X = (tau^k) * I and the feedback
kernel K_k = theta tau^k + alpha Q_k, Q_k = tau sum_{n<k} tau^{k-1-n} tau_r^n (K_0 = 0). With theta > 0
and alpha >= 0 every K_k >= 0: an earlier spike can only lower a later potential. PMBC ("parallel
max-min boundary compression") uses that: undecided past spikes taken as 0 give an upper bound of
the membrane, taken as 1 a lower bound; a step whose lower bound reaches theta fires, one whose upper
bound stays below is silent. Each pass decides at least the earliest undecided step (its past is
known, so both bounds are exact there), so PMBC ends after at most L passes and equals the loop.

Gradients (spec 1.5, choice 5): the spikes are constants inside the feedback; the final membrane
M = X - K * s is differentiable in the input, theta and alpha, and the triangle surrogate acts on
M - theta. The sequential loop detaches s in its reset and refractory terms, so both modes give the
same gradients.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn as nn

from zoo.nn import fft_conv, spike

MODES = ("sequential", "pmbc", "capped")
CONV_ENGINES = ("auto", "fft", "toeplitz")
# Longest L for which `auto` uses the dense Toeplitz matmul instead of the FFT. On a GPU the spec's
# choice (7: Toeplitz up to 4K, not measured here); on a CPU the two cross between L = 256 and 512
# (B x H = 4 x 64, 2 cores), and at L = 1024 the FFT is 2-3x faster (benchmarks/bench_pmbc.py).
TOEPLITZ_MAX_LEN = {"cuda": 4096, "cpu": 256}


# ---- kernels and causal convolutions --------------------------------------------------------------
def srr_kernels(tau: float, tau_r: float, L: int, dtype: torch.dtype = torch.float64,
                device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The two kernels of the unrolled neuron, each (L,): decay[k] = tau^k (k >= 0, the drive and,
    without k = 0, the reset part) and refractory[k] = Q_k = tau sum_{n<k} tau^{k-1-n} tau_r^n.

    Powers come from a running product, so they are exact whenever representable (dyadic tau).
    Raises ValueError when tau or tau_r is outside [0, 1).
    """
    for name, value in (("tau", tau), ("tau_r", tau_r)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    ones = torch.ones(1, dtype=torch.float64, device=device)
    decay = torch.cat([ones, torch.full((L - 1,), tau, dtype=torch.float64, device=device).cumprod(0)])
    if tau == tau_r:
        refractory = torch.arange(L, dtype=torch.float64, device=device) * decay
    else:
        decay_r = torch.cat([ones, torch.full((L - 1,), tau_r, dtype=torch.float64, device=device).cumprod(0)])
        refractory = tau * (decay - decay_r) / (tau - tau_r)
    return decay.to(dtype), refractory.to(dtype)


@functools.lru_cache(maxsize=4)
def _toeplitz(tau: float, tau_r: float, L: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """W (L, 2L) = [T(decay) | T(refractory)], T(k)[j, t] = k[t - j] for t >= j, else 0, so that
    u @ T(k) is the causal convolution of u (..., L) with k. Shared by every channel (theta and alpha
    enter as per-row scalars); cached because each layer calls it with the same arguments."""
    with torch.inference_mode(False):  # a cached inference tensor could not be saved for backward later
        return _toeplitz_build(tau, tau_r, L, dtype, device)


def _toeplitz_build(tau: float, tau_r: float, L: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    decay, refractory = srr_kernels(tau, tau_r, L, dtype, device)
    lag = torch.arange(L, device=device).unsqueeze(0) - torch.arange(L, device=device).unsqueeze(1)  # t - j
    causal = lag >= 0
    index = lag.clamp(min=0)
    zero = torch.zeros((), dtype=dtype, device=device)
    return torch.cat([torch.where(causal, decay[index], zero), torch.where(causal, refractory[index], zero)], 1)


class _SRRConvolutions:
    """The drive X = tau^k * x and the feedback K * s for rows of (R, L) sequences, by one engine.

    Row r has threshold thr[r] and refractory magnitude alpha[r] (shape (R, 1)); K = thr P + alpha Q
    with P_k = tau^k for k >= 1 and P_0 = 0.
    """

    def __init__(self, engine: str, tau: float, tau_r: float, L: int, dtype: torch.dtype, device):
        self.engine, self.L = engine, L
        if engine == "toeplitz":
            self.W = _toeplitz(tau, tau_r, L, dtype, torch.device(device))
        else:
            decay, refractory = srr_kernels(tau, tau_r, L, dtype, device)
            self.decay = decay.unsqueeze(0)  # (1, L), broadcast over rows by fft_conv
            self.reset = decay.clone()
            self.reset[0] = 0
            self.refractory = refractory

    def drive(self, x: torch.Tensor) -> torch.Tensor:  # (R, L) -> (R, L)
        if self.engine == "toeplitz":
            return x @ self.W[:, : self.L]
        return fft_conv(x, self.decay)

    def feedback(self, s: torch.Tensor, thr: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """(..., R, L) spikes -> (..., R, L) total inhibition sum_{j<t} K_{t-j} s_j per row."""
        if self.engine == "toeplitz":
            both = s @ self.W  # (..., R, 2L): [decay * s | refractory * s]
            return thr * (both[..., : self.L] - s) + alpha * both[..., self.L:]
        kernel = thr * self.reset + alpha * self.refractory  # (R, L), one kernel per row
        return fft_conv(s, kernel)


def choose_engine(engine: str, L: int, device) -> str:
    """'fft' or 'toeplitz': `auto` takes Toeplitz up to TOEPLITZ_MAX_LEN for the device type."""
    if engine != "auto":
        return engine
    kind = torch.device(device).type
    return "toeplitz" if L <= TOEPLITZ_MAX_LEN.get(kind, TOEPLITZ_MAX_LEN["cuda"]) else "fft"


# ---- the three solvers (pure functions on rows (R, L)) --------------------------------------------
def srr_sequential(x: torch.Tensor, thr: torch.Tensor, alpha: torch.Tensor, tau: float,
                   tau_r: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference loop of section 1.2 over the last axis: x (..., L); thr and alpha broadcast
    against x with a time axis of size 1 (e.g. (R, 1) for rows). Returns spikes and membranes m (both
    (..., L)); spikes carry the triangle surrogate and are detached in the reset and refractory terms."""
    thr, alpha = thr[..., 0], alpha[..., 0]
    v = torch.zeros_like(x[..., 0])
    r = torch.zeros_like(v)
    spikes, membranes = [], []
    for x_t in x.unbind(-1):  # one backward node for all steps (indexing x[..., t] costs O(L) each)
        m = tau * v + x_t
        s = spike(m - thr, "triangle")
        r = tau_r * r + alpha * s.detach()
        v = m - thr * s.detach() - r
        spikes.append(s)
        membranes.append(m)
    return torch.stack(spikes, -1), torch.stack(membranes, -1)


def srr_pmbc(x: torch.Tensor, thr: torch.Tensor, alpha: torch.Tensor, tau: float, tau_r: float,
             max_passes: int | None = None, engine: str = "auto") -> tuple[torch.Tensor, dict]:
    """PMBC on rows x (R, L) with per-row thr, alpha (R, 1) (thr > 0, alpha >= 0 for exactness).

    `max_passes=None` runs to convergence (exact, at most L passes); an integer caps the passes and
    leaves every step still undecided silent. Returns the spikes (R, L) (forward: exactly the
    decided spikes; backward: triangle surrogate at M - thr, zero at undecided steps) and a dict with
    `passes` (passes run) and `undecided` (fraction of steps left undecided).
    """
    R, L = x.shape
    conv = _SRRConvolutions(choose_engine(engine, L, x.device), tau, tau_r, L, x.dtype, x.device)
    X = conv.drive(x)  # (R, L), differentiable in x
    with torch.no_grad():
        Xd, thr_d, alpha_d = X.detach(), thr.detach(), alpha.detach()
        S = torch.zeros_like(Xd)
        known = torch.zeros(R, L, dtype=torch.bool, device=x.device)
        active = torch.arange(R, device=x.device)
        passes = 0
        while active.numel() and (max_passes is None or passes < max_passes):
            passes += 1
            s_a, known_a, thr_a = S[active], known[active], thr_d[active]
            unknown = ~known_a
            inhibition = conv.feedback(torch.stack([s_a, unknown.to(S.dtype)]), thr_a, alpha_d[active])
            upper = Xd[active] - inhibition[0]  # undecided spikes taken as 0: S is 0 there
            lower = upper - inhibition[1]  # undecided spikes taken as 1
            fire = unknown & (lower >= thr_a)
            silent = unknown & ~fire & (upper < thr_a)
            # The earliest undecided step has a known past, so `upper` is its exact membrane. Deciding
            # it from `upper` alone guarantees progress even if FFT round-off separates the bounds.
            rows = torch.arange(active.numel(), device=x.device)
            first = unknown.to(torch.uint8).argmax(-1)
            first_fires = upper[rows, first] >= thr_a[:, 0]
            fire[rows, first] = first_fires
            silent[rows, first] = ~first_fires
            S[active] = s_a + fire.to(S.dtype)
            known_a = known_a | fire | silent
            known[active] = known_a
            active = active[~known_a.all(-1)]
        undecided = float((~known).sum()) / max(known.numel(), 1)
    M = X - conv.feedback(S, thr, alpha)  # spikes constant in the feedback (spec 1.5)
    surrogate = spike(M - thr, "triangle")
    if undecided:
        surrogate = surrogate * known.to(surrogate.dtype)
    # forward value exactly the decided spikes, whatever the last bits of M; gradient the surrogate's
    out = surrogate + (S - surrogate).detach()
    return out, {"passes": passes, "undecided": undecided}


# ---- the module ---------------------------------------------------------------------------------
class SRRNeuron(nn.Module):
    """Soft-reset + refractory spiking neuron, one per channel: (B, H, L) currents -> (B, H, L) spikes.

    Trainable per channel: the threshold theta = exp(log_threshold) and the refractory magnitude
    alpha = softplus(alpha_raw) >= 0 (PMBC needs alpha >= 0). tau and tau_r are fixed.
    `threshold_form`: "input_scale" divides the current by theta and fires at 1 with unit reset (the
    SpikingSSMs block, spec 3.1; alpha is then in threshold units); "membrane" uses theta directly as
    threshold and reset (spec 1.2). Both give the same spikes for matching alpha (alpha_membrane =
    alpha theta); they differ in how the gradient is scaled.
    Modes: "sequential" (the reference loop), "pmbc" (to convergence, exact), "capped" (at most
    `max_passes` passes, undecided steps silent). After each forward, `last_passes` holds the passes
    PMBC ran (None for the loop) and `last_undecided_fraction` the fraction of steps left undecided.
    """

    spiking_neuron = True

    def __init__(self, d_model: int, tau: float = 0.2, tau_r: float = 0.5, theta_init: float = 1.0,
                 alpha_init: float = 0.5, mode: str = "pmbc", max_passes: int = 3, engine: str = "auto",
                 threshold_form: str = "input_scale"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"neuron mode must be one of {MODES}, got {mode!r}")
        if engine not in CONV_ENGINES:
            raise ValueError(f"PMBC convolution engine must be one of {CONV_ENGINES}, got {engine!r}")
        if threshold_form not in ("input_scale", "membrane"):
            raise ValueError(f"threshold_form must be 'input_scale' or 'membrane', got {threshold_form!r}")
        if theta_init <= 0 or alpha_init <= 0 or max_passes < 1:
            raise ValueError("theta_init and alpha_init must be positive and max_passes at least 1, got "
                             f"{theta_init}, {alpha_init}, {max_passes}")
        srr_kernels(tau, tau_r, 1)  # validates tau, tau_r
        self.d_model, self.tau, self.tau_r = d_model, tau, tau_r
        self.mode, self.max_passes, self.engine, self.threshold_form = mode, max_passes, engine, threshold_form
        self.log_threshold = nn.Parameter(torch.full((d_model,), math.log(theta_init)))
        # softplus^-1(alpha_init), written to stay finite for large values
        self.alpha_raw = nn.Parameter(torch.full((d_model,), alpha_init + math.log(-math.expm1(-alpha_init))))
        self.last_passes: int | None = None
        self.last_undecided_fraction = 0.0

    @property
    def threshold(self) -> torch.Tensor:  # (H,)
        return self.log_threshold.exp()

    @property
    def alpha(self) -> torch.Tensor:  # (H,)
        return nn.functional.softplus(self.alpha_raw)

    def _scaled(self, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Input, threshold and alpha in the form the dynamics use; thr, alpha broadcast to (..., H)."""
        theta = self.threshold.to(current.dtype)
        alpha = self.alpha.to(current.dtype)
        if self.threshold_form == "input_scale":
            shape = (-1, 1) if current.dim() == 3 else (-1,)
            return current / theta.view(shape), torch.ones_like(theta), alpha
        return current, theta, alpha

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        """current (B, H, L) -> spikes (B, H, L), exactly {0, 1} in current's dtype.

        Raises ValueError when the input is not a floating (B, H, L) tensor with H = d_model.
        """
        if current.dim() != 3 or current.shape[1] != self.d_model or not current.is_floating_point():
            raise ValueError(f"SRRNeuron expects floating currents (batch, {self.d_model}, length), "
                             f"got shape {tuple(current.shape)} dtype {current.dtype}")
        B, H, L = current.shape
        x, thr, alpha = self._scaled(current)
        if self.mode == "sequential":
            s, _ = srr_sequential(x, thr.view(1, H, 1), alpha.view(1, H, 1), self.tau, self.tau_r)
            self.last_passes, self.last_undecided_fraction = None, 0.0
            return s
        rows = lambda p: p.expand(B, H).reshape(B * H, 1)  # noqa: E731 - channel value per row b*H + h
        s, info = srr_pmbc(x.reshape(B * H, L), rows(thr), rows(alpha), self.tau, self.tau_r,
                           self.max_passes if self.mode == "capped" else None, self.engine)
        self.last_passes, self.last_undecided_fraction = info["passes"], info["undecided"]
        return s.view(B, H, L)

    # ---- step mode --------------------------------------------------------------------------------
    def init_state(self, batch: int, dtype: torch.dtype = torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(v, r): membrane after reset and refractory trace, each (B, H), zero."""
        zeros = torch.zeros(batch, self.d_model, dtype=dtype, device=device)
        return zeros, zeros.clone()

    def step(self, current_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """One time step: current_t (B, H) -> (spikes (B, H), new state). O(H), position-free."""
        v, r = state
        x, thr, alpha = self._scaled(current_t)
        m = self.tau * v + x
        s = spike(m - thr, "triangle")
        r = self.tau_r * r + alpha * s.detach()
        v = m - thr * s.detach() - r
        return s, (v, r)

    def extra_repr(self) -> str:
        return (f"{self.d_model}, tau={self.tau}, tau_r={self.tau_r}, mode={self.mode}, "
                f"max_passes={self.max_passes}, engine={self.engine}, threshold_form={self.threshold_form}")
