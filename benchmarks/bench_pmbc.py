"""SRR neuron: PMBC against the sequential loop, both exact, measured side by side in one run.

    python benchmarks/run.py pmbc            # L = 1024, 8192, 16384 (B x H = 4 x 64)
    python benchmarks/run.py pmbc --quick    # L = 512, 1024 (B x H = 2 x 16), seconds

Input: N(0, 1) currents (B, H, L), float32, the default neuron (tau 0.2, tau_r 0.5, theta 1,
alpha 0.5). "fwd" runs under no_grad; "fwd+bwd" backpropagates a random projection of the spikes.
PMBC runs with both convolution engines where the dense Toeplitz matrix (L x 2L) is affordable
(CPU: L <= 1024; GPU: L <= 8192). "faster exact" names the fastest of the exact methods on this
machine: on a CPU that is often the loop (no parallel hardware to use), which is why the table picks
per row rather than assuming. "passes" is the largest number of PMBC passes any sequence needed,
"decided after 3" the share of steps that 3 passes decide (the secondhand "3 passes resolve ~99%"),
and "mismatches" the spikes on which PMBC and the loop differ (float32 round-off at near-ties).

Notes: GPU numbers were not measured (the session that wrote this had no GPU machine); run the same
command on one and record the table here. The paper's 25.6x (1K) and 81.7x (8K) speed-ups [S] are
GPU numbers with an unknown batch and width.
"""

import torch

from run import timed

from zoo_spike_ssm.neuron import SRRNeuron, choose_engine, srr_pmbc

TITLE = "SRR neuron: PMBC vs the sequential loop (exact methods; ms, best of 3; the loop once at L > 4096 or --quick)"
TOEPLITZ_LIMIT = {"cpu": 1024, "cuda": 8192}


def run(quick: bool) -> list[dict]:
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    B, H = (2, 16) if quick else (4, 64)
    lengths = [512, 1024] if quick else [1024, 8192, 16384]
    neuron = SRRNeuron(H).to(device)
    rows = []
    for L in lengths:
        x = torch.randn(B, H, L, device=device)
        w = torch.randn(B, H, L, device=device)
        methods = {"sequential": ("sequential", "auto"), "pmbc-fft": ("pmbc", "fft")}
        if L <= TOEPLITZ_LIMIT[device.type]:
            methods["pmbc-toeplitz"] = ("pmbc", "toeplitz")
        forward, backward, spikes = {}, {}, {}
        for name, (mode, engine) in methods.items():
            neuron.mode, neuron.engine = mode, engine

            def fwd():
                with torch.no_grad():
                    spikes[name] = neuron(x)
                sync(device)

            def fwd_bwd():
                xg = x.clone().requires_grad_()
                (w * neuron(xg)).sum().backward()
                sync(device)

            repeat = 1 if mode == "sequential" and (quick or L > 4096) else 3
            forward[name] = timed(fwd, repeat)
            backward[name] = timed(fwd_bwd, repeat)
        neuron.mode, neuron.engine = "pmbc", "auto"
        with torch.no_grad():
            s = neuron(x)
            passes = neuron.last_passes
            rows_x = (x / neuron.threshold.view(-1, 1)).reshape(B * H, L)
            rows_alpha = neuron.alpha.expand(B, H).reshape(-1, 1)
            _, capped = srr_pmbc(rows_x, torch.ones_like(rows_alpha), rows_alpha, neuron.tau, neuron.tau_r, 3)
        pmbc_fwd = min(v for k, v in forward.items() if k != "sequential")
        pmbc_bwd = min(v for k, v in backward.items() if k != "sequential")
        rows.append({
            "L": L, "B x H": f"{B}x{H}",
            "seq fwd": 1e3 * forward["sequential"], "pmbc-fft fwd": 1e3 * forward["pmbc-fft"],
            "pmbc-toeplitz fwd": _ms(forward.get("pmbc-toeplitz")),
            "seq / pmbc fwd": forward["sequential"] / pmbc_fwd,
            "seq fwd+bwd": 1e3 * backward["sequential"], "pmbc-fft fwd+bwd": 1e3 * backward["pmbc-fft"],
            "pmbc-toeplitz fwd+bwd": _ms(backward.get("pmbc-toeplitz")),
            "seq / pmbc fwd+bwd": backward["sequential"] / pmbc_bwd,
            "passes": passes, "decided after 3 (%)": 100 * (1 - capped["undecided"]),
            "spike rate (%)": 100 * float(s.mean()),
            "mismatches": int((spikes["pmbc-fft"] != spikes["sequential"]).sum()),
            "auto engine": choose_engine("auto", L, device),
            "faster exact fwd": min(forward, key=forward.get),
            "faster exact fwd+bwd": min(backward, key=backward.get),
        })
    return rows


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _ms(seconds: float | None):
    return "-" if seconds is None else 1e3 * seconds
