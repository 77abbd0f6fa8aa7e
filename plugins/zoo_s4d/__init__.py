"""Dense S4D: the baseline every spiking model in the zoo is compared with.

Layer (minimal S4D of Gu et al., arXiv 2206.11893): SSM convolution + D skip -> GELU -> dropout
(tied over time) -> GLU position-wise mixing. Spec: shared/specs/binary-s4d-gsu.md section 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
from zoo.config import ModelConfig, option
from zoo.nn import GLU, DropoutNd, PositionwiseLinear, SequenceModel, SSMConv


# ---- config -------------------------------------------------------------------------------------
@dataclass
class S4DConfig(ModelConfig):
    mixing: str = option("glu", choices=("glu", "linear"), doc="position-wise output mixing after the activation")


# ---- modules ------------------------------------------------------------------------------------
class S4DLayer(nn.Module):
    """(B, H, L) -> (B, H, L): SSM conv, GELU, tied dropout, GLU (or linear) mixing."""

    def __init__(self, config: S4DConfig):
        super().__init__()
        c = config
        self.ssm = SSMConv.from_config(c)
        self.drop = DropoutNd(c.dropout, c.tie_dropout)
        self.mixing = GLU(c.d_model) if c.mixing == "glu" else PositionwiseLinear(c.d_model)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.mixing(self.drop(F.gelu(self.ssm(u))))

    def init_state(self, batch: int, dtype=torch.float32, device=None):
        return self.ssm.init_state(batch, dtype, device)

    def step(self, u_t: torch.Tensor, state):  # (B, H)
        y, state = self.ssm.step(u_t, state)
        return self.mixing(F.gelu(y)), state


class S4D(SequenceModel):
    card_notes = """
Dense S4D (Gu, Gupta, Goel, Re 2022, arXiv:2206.11893), the reference point for every spiking model
in the zoo. Verified against the S4 authors' minimal S4D layer (spec `binary-s4d-gsu.md` section 1):
diagonal complex A in conjugate pairs (N/2 stored modes), `A = -exp(log_A_real) + i A_imag`,
B fixed to 1 and absorbed into C, log-uniform dt in [dt_min, dt_max], ZOH (default) or bilinear
discretisation, Vandermonde kernel, FFT convolution padded to 2L, D skip, GELU, dropout tied over
time, GLU output mixing (`mixing="linear"` gives the plain H->H linear of some S4 configs).
A, dt use their own learning rate `ssm_lr` with no weight decay; C, D and the rest use the global
settings. Bidirectional models use the S4 two-sided kernel (backward kernel applied to u[t+1+m]).
"""

    def __init__(self, config: S4DConfig):
        super().__init__(config, lambda c, i: S4DLayer(c))


# ---- registration -------------------------------------------------------------------------------
@zoo.hookimpl
def register_architectures(register):
    register("s4d", S4DConfig, S4D, description="Dense S4D baseline (GELU + GLU), Gu et al. 2022")


# Trained here (zoo.train) and shipped in model_cards/s4d-sfmnist; the numbers are that folder's card.
S4D_SFMNIST_COMMAND = (
    "zoo train s4d --dataset sfmnist --model-name s4d-sfmnist --set d_model=32 --set n_layers=3 "
    "--set d_state=32 --epochs 3 --batch-size 32 --lr 0.01 --weight-decay 0.05 --warmup-steps 300 "
    "--grad-clip 1.0 --seed 0")
S4D_TINY_TEXT_COMMAND = (
    "zoo train s4d --dataset tiny-text --model-name s4d-tiny-text --set d_model=64 --set n_layers=3 "
    "--set d_state=32 --set norm=layer --set prenorm=true --epochs 20 --batch-size 32 --lr 0.005 "
    "--weight-decay 0.05 --warmup-steps 50 --grad-clip 1.0 --seed 0")
S4D_LISTOPS256_COMMAND = (
    "zoo train s4d --dataset listops --model-name s4d-listops256 --data-option n_train=20000 "
    "--data-option n_val=1000 --data-option n_test=2000 --data-option min_len=32 --data-option max_len=256 "
    "--set d_model=64 --set n_layers=4 --set d_state=32 --epochs 5 --batch-size 32 --lr 0.005 "
    "--weight-decay 0.05 --warmup-steps 200 --grad-clip 1.0 --seed 0")


@zoo.hookimpl
def register_models(register):
    register(zoo.ModelEntry(
        name="s4d-sfmnist", architecture="s4d",
        config={"d_model": 32, "d_state": 32, "n_layers": 3, "norm": "batch", "prenorm": False,
                "task": "classification", "d_input": 1, "n_classes": 10, "seq_len": 784, "pooling": "mean"},
        task="classification", dataset="sfmnist", license="apache-2.0", paper="arXiv:2206.11893",
        description="Dense S4D on sequential Fashion-MNIST (784 pixels, one per step): the bundled baseline",
        sha256="b01f31a9765ff0d71994b70033a79897bea9c8adb152b69b1181cf310b83cfcc", bundled=True,
        measured={"accuracy": 0.883, "loss": 0.32437794294357297},
        notes=(f"Trained by this project in 27.2 min on one thread of a shared 2-core CPU: `{S4D_SFMNIST_COMMAND}` "
               "(3 epochs on 55,000 training images, 5,000 held out). Test accuracy on all 10,000 test images; "
               "`zoo eval s4d-sfmnist` reproduces it."),
    ))
    register(zoo.ModelEntry(
        name="s4d-tiny-text", architecture="s4d",
        config={"d_model": 64, "d_state": 32, "n_layers": 3, "norm": "layer", "prenorm": True, "task": "lm",
                "vocab_size": 97, "seq_len": 256},
        task="lm", dataset="tiny-text", license="apache-2.0", paper="arXiv:2206.11893",
        description="Tiny character-level S4D language model on The Devil's Dictionary (Debian dict-devil)",
        sha256="1ffc23ac4ba09086988687cc557aac00bf3814f6ab9602c7cc5e68ea049256be", bundled=True,
        measured={"bits_per_token": 2.6618797181864715, "loss": 1.8450744216506545, "accuracy": 0.4653188344594595},
        notes=(f"Trained by this project in 3.9 min on one CPU thread: `{S4D_TINY_TEXT_COMMAND}`. A smoke-test "
               "sized model: 2.66 bits per character (next-character accuracy 46.5%) on the last 5% of the text "
               "(74 windows of 256 characters)."),
    ))
    register(zoo.ModelEntry(
        name="s4d-listops256", architecture="s4d",
        config={"d_model": 64, "d_state": 32, "n_layers": 4, "norm": "batch", "prenorm": False,
                "task": "classification", "vocab_size": 16, "n_classes": 10, "seq_len": 256, "pooling": "mean"},
        task="classification", dataset="listops", license="apache-2.0", paper="arXiv:2206.11893",
        description="Dense S4D on ListOps from our generator, expressions of 32 to 256 tokens (shorter than LRA's)",
        sha256="12aac88f0bb14ef99d3749d80b92a83e27d20725195e9159911a0ea28ebb76a5", bundled=True,
        measured={"accuracy": 0.441, "loss": 1.4651478729248046},
        notes=(f"Trained by this project in 9.6 min on one CPU thread: `{S4D_LISTOPS256_COMMAND}`. Not the LRA "
               "benchmark: LRA's expressions have 500 to 2,000 tokens; these have 32 to 256 (20,000 training "
               "expressions). 44.1% on 2,000 test expressions (the most frequent class is about 16%)."),
    ))
