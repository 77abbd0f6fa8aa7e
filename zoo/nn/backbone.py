"""The sequence backbone every architecture shares: encoder -> residual blocks -> decoder.

An architecture supplies only its layer (B, H, L) -> (B, H, L) through `make_layer(config, i)`.
A layer that streams implements `init_state(batch, dtype, device)` and `step(x_t, state)` with
x_t (B, H); the backbone then streams the whole model with the same pair of methods.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.config import ModelConfig


class DropoutNd(nn.Module):
    """Dropout on (B, H, L) whose mask is shared over time when `tie` (S4's DropoutNd)."""

    def __init__(self, p: float = 0.0, tie: bool = True):
        super().__init__()
        self.p, self.tie = p, tie

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if not self.tie:
            return F.dropout(x, self.p, True)
        mask = torch.rand(x.shape[:-1] + (1,), device=x.device) >= self.p  # (B, H, 1)
        return x * mask.to(x.dtype) / (1 - self.p)


class ChannelNorm(nn.Module):
    """BatchNorm1d or LayerNorm over the channel axis of (B, H, L), or identity.

    Step mode runs on (B, H) slices; BatchNorm then uses its running statistics (eval mode).
    """

    def __init__(self, kind: str, d_model: int):
        super().__init__()
        self.kind = kind
        if kind == "batch":
            self.norm = nn.BatchNorm1d(d_model)
        elif kind == "layer":
            self.norm = nn.LayerNorm(d_model)
        else:
            self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "layer":
            return self.norm(x.transpose(1, 2)).transpose(1, 2)
        return self.norm(x)

    def step(self, x_t: torch.Tensor) -> torch.Tensor:
        return self.norm(x_t)  # (B, H): BatchNorm1d and LayerNorm both take it as is


class GLU(nn.Module):
    """Position-wise mixing H -> 2H then a * sigmoid(b), on (B, H, L) or (B, H)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.linear = nn.Linear(d_model, 2 * d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return F.glu(self.linear(x), dim=-1)
        return F.glu(self.linear(x.transpose(1, 2)), dim=-1).transpose(1, 2)


class PositionwiseLinear(nn.Linear):
    """Linear H -> H over the channel axis of (B, H, L), or on a (B, H) step slice."""

    def __init__(self, d_model: int):
        super().__init__(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return super().forward(x)
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class ResidualBlock(nn.Module):
    """prenorm: x + Dropout(layer(norm(x))); postnorm: norm(x + Dropout(layer(x)))."""

    def __init__(self, layer: nn.Module, config: ModelConfig):
        super().__init__()
        self.layer = layer
        self.prenorm = config.prenorm
        self.norm = ChannelNorm(config.norm, config.d_model)
        self.drop = DropoutNd(config.dropout, config.tie_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, L)
        if self.prenorm:
            return x + self.drop(self.layer(self.norm(x)))
        return self.norm(x + self.drop(self.layer(x)))

    def init_state(self, batch: int, dtype: torch.dtype, device) -> Any:
        if not hasattr(self.layer, "step"):
            raise RuntimeError(f"{type(self.layer).__name__} has no step mode")
        return self.layer.init_state(batch, dtype=dtype, device=device)

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:  # (B, H)
        if self.prenorm:
            y, state = self.layer.step(self.norm.step(x_t), state)
            return x_t + y, state
        y, state = self.layer.step(x_t, state)
        return self.norm.step(x_t + y), state


class SequenceModel(nn.Module):
    """Encoder, `n_layers` residual blocks of the architecture's layer, decoder.

    Input: tokens (B, L) long when `vocab_size > 0`, else (B, L, d_input) float; for the two-document
    retrieval task, tokens (B, 2, L): both documents go through the same stack, are pooled, and
    [u, v, u*v, u-v] feeds an MLP (the S4 retrieval decoder).
    Output: classification logits (B, n_classes), or LM logits (B, L, vocab_size).
    `encoder` / `decoder` may be replaced by an architecture (e.g. adaptive input and softmax).
    """

    def __init__(
        self,
        config: ModelConfig,
        make_layer: Callable[[ModelConfig, int], nn.Module],
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ):
        super().__init__()
        self.config = config
        H = config.d_model
        if encoder is None:
            encoder = nn.Embedding(config.vocab_size, H) if config.vocab_size else nn.Linear(config.d_input, H)
        self.encoder = encoder
        self.blocks = nn.ModuleList(ResidualBlock(make_layer(config, i), config) for i in range(config.n_layers))
        self.final_norm = ChannelNorm(config.norm, H) if config.prenorm else nn.Identity()
        if decoder is None and config.task == "retrieval":
            decoder = nn.Sequential(nn.Linear(4 * H, H), nn.GELU(), nn.Linear(H, config.n_classes))
        elif decoder is None:
            out = config.vocab_size if config.task == "lm" else config.n_classes
            decoder = nn.Linear(H, out)
        self.decoder = decoder

    # ---- input checks -------------------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError naming the problem when x does not match the input spec."""
        c = self.config
        if c.task == "retrieval" and (x.dim() != 3 or x.shape[1] != 2):
            raise ValueError(f"expected two documents of token ids, shape (batch, 2, length), got {tuple(x.shape)}")
        if c.vocab_size:
            if x.dim() != (3 if c.task == "retrieval" else 2) or x.dtype not in (torch.int64, torch.int32):
                raise ValueError(f"expected token ids of shape (batch, length) and dtype int64, "
                                 f"got shape {tuple(x.shape)} dtype {x.dtype}")
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= c.vocab_size):
                bad = int(x.max()) if int(x.max()) >= c.vocab_size else int(x.min())
                raise ValueError(f"token id {bad} is outside the vocabulary [0, {c.vocab_size})")
        else:
            if x.dim() != 3 or x.shape[-1] != c.d_input:
                raise ValueError(f"expected input of shape (batch, length, {c.d_input}), got {tuple(x.shape)}")
            if not x.is_floating_point():
                raise ValueError(f"expected a floating-point input, got dtype {x.dtype}")

    def example_input(self, batch: int = 1, length: int | None = None, generator=None) -> torch.Tensor:
        """A random input that matches the input spec (for profiling and smoke tests)."""
        c = self.config
        L = length or c.seq_len
        if c.vocab_size:
            shape = (batch, 2, L) if c.task == "retrieval" else (batch, L)
            return torch.randint(0, c.vocab_size, shape, generator=generator)
        return torch.rand(batch, L, c.d_input, generator=generator)

    # ---- parallel mode ------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L[, d_input]) -> (B, H, L) after the last block (and final norm).

        Retrieval input (B, 2, L) is folded to (2B, L) first: both documents share the stack.
        """
        self.check_input(x)
        if self.config.task == "retrieval":
            x = x.reshape(-1, x.shape[-1])  # (2B, L)
        h = self.encoder(x).transpose(1, 2)  # (B, H, L)
        for block in self.blocks:
            h = block(h)
        return self.final_norm(h)

    def forward_head(self, h: torch.Tensor) -> torch.Tensor:
        if self.config.task == "lm":
            return self.decoder(h.transpose(1, 2))  # (B, L, V)
        pooled = h.mean(-1) if self.config.pooling == "mean" else h[..., -1]  # (B, H)
        if self.config.task == "retrieval":
            u, v = pooled.view(-1, 2, pooled.shape[-1]).unbind(1)  # (B, H) each
            pooled = torch.cat([u, v, u * v, u - v], dim=-1)  # (B, 4H)
        return self.decoder(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # ---- step mode ----------------------------------------------------------------------------
    def init_state(self, batch: int, dtype: torch.dtype = torch.float32, device=None) -> dict:
        """State for `step`: per-block states plus the running pooling sum."""
        if self.config.task == "retrieval":
            raise RuntimeError("step mode streams one sequence; the retrieval task reads two documents")
        if self.config.bidirectional:
            raise RuntimeError("step mode needs a causal model: this one is bidirectional; "
                               "build it with bidirectional=False for streaming")
        return {
            "blocks": [b.init_state(batch, dtype, device) for b in self.blocks],
            "pool_sum": torch.zeros(batch, self.config.d_model, dtype=dtype, device=device),
            "t": 0,
        }

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One time step: x_t (B,) tokens or (B, d_input). O(1) in the position.

        Returns LM logits (B, V), or the classifier's logits on the prefix seen so far (B, n_classes):
        after the last step they equal `forward` on the whole sequence.
        """
        h = self.encoder(x_t)  # (B, H)
        states = []
        for block, s in zip(self.blocks, state["blocks"]):
            h, s = block.step(h, s)
            states.append(s)
        if isinstance(self.final_norm, ChannelNorm):
            h = self.final_norm.step(h)
        t = state["t"] + 1
        pool_sum = state["pool_sum"] + h
        new_state = {"blocks": states, "pool_sum": pool_sum, "t": t}
        if self.config.task == "lm":
            return self.decoder(h), new_state
        pooled = pool_sum / t if self.config.pooling == "mean" else h
        return self.decoder(pooled), new_state
