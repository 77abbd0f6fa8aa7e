"""S4D layer forward+backward: FFT convolution mode against the step-by-step recurrence."""

import torch

from run import timed

from zoo.nn import SSMConv

TITLE = "S4D layer forward+backward: FFT mode vs step-by-step recurrence"


def run(quick: bool) -> list[dict]:
    torch.manual_seed(0)
    B, H, N = (2, 32, 32) if quick else (4, 64, 64)
    lengths = [256, 1024] if quick else [1024, 4096, 16384]
    layer = SSMConv(H, N)
    rows = []
    for L in lengths:
        u = torch.randn(B, H, L, requires_grad=True)

        def fft_mode():
            layer(u).square().mean().backward()

        def step_mode():
            state = layer.init_state(B)
            ys = []
            for t in range(L):
                y, state = layer.step(u[..., t], state)
                ys.append(y)
            torch.stack(ys, -1).square().mean().backward()

        t_fft = timed(fft_mode)
        t_step = timed(step_mode, repeat=1)
        rows.append({"L": L, "B x H x N": f"{B}x{H}x{N}", "fft fwd+bwd (ms)": 1e3 * t_fft,
                     "recurrence fwd+bwd (ms)": 1e3 * t_step, "recurrence / fft": t_step / t_fft})
    return rows
