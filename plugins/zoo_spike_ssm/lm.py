"""Adaptive input embedding and tied adaptive softmax for large word vocabularies.

Baevski & Auli (adaptive input, arXiv 1809.10853) and Grave et al. (adaptive softmax, arXiv
1609.04309) in the Transformer-XL form that the S4 language model uses (spec section 4): the
vocabulary, sorted by frequency, is cut into bands at `cutoffs`; band i has embedding width
d_model / div_val^i and a projection to d_model (the first band, of full width, needs none). The
softmax reuses the same tables and projections (tied), with one bias per word and one logit per
tail band ("cluster") in the head.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def band_edges(vocab_size: int, cutoffs: list[int]) -> list[int]:
    """[0, c_1, ..., c_k, V] with the cutoffs below V (a reduced vocabulary drops the rest)."""
    return [0] + [c for c in cutoffs if 0 < c < vocab_size] + [vocab_size]


class AdaptiveInput(nn.Module):
    """Token ids (...) -> embeddings (..., d_model), scaled by sqrt(d_model), then dropout.

    Init [D]: band tables N(0, init_scale^2 / d_i), projections N(0, 1 / d_model), so that every band
    gives embeddings of standard deviation init_scale after the sqrt(d_model) scale, and the tied
    softmax starts with logits of standard deviation about init_scale.
    """

    def __init__(self, vocab_size: int, d_model: int, cutoffs: list[int], div_val: int = 4,
                 init_scale: float = 0.5, dropout: float = 0.0):
        super().__init__()
        self.edges = band_edges(vocab_size, cutoffs)
        self.d_model, self.scale = d_model, math.sqrt(d_model)
        self.tables = nn.ModuleList()
        self.projections = nn.ModuleList()
        for i in range(len(self.edges) - 1):
            width = max(1, d_model // div_val ** i)
            table = nn.Embedding(self.edges[i + 1] - self.edges[i], width)
            nn.init.normal_(table.weight, std=init_scale / math.sqrt(width))
            self.tables.append(table)
            if width == d_model:
                self.projections.append(nn.Identity())
            else:
                projection = nn.Linear(width, d_model, bias=False)  # weight (d_model, width)
                nn.init.normal_(projection.weight, std=1 / math.sqrt(d_model))
                self.projections.append(projection)
        self.drop = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        out = None
        for lo, hi, table, projection in zip(self.edges[:-1], self.edges[1:], self.tables, self.projections):
            rows = ((flat >= lo) & (flat < hi)).nonzero().squeeze(-1)
            emb = projection(table(flat[rows] - lo))  # (n_band, d_model)
            if out is None:
                out = emb.new_zeros(flat.numel(), self.d_model)
            out = out.index_copy(0, rows, emb)
        return self.drop(self.scale * out.view(*ids.shape, self.d_model))


class AdaptiveLogSoftmax(nn.Module):
    """Hidden states (..., d_model) -> log-probabilities (..., V), or the NLL of given targets.

    Head: the first band's words plus one logit per tail band; a tail word's log-probability is its
    band's logit in the head plus its log-softmax within the band. With `tie_to`, the tables and
    projections are those of an AdaptiveInput (the same Parameter objects).
    """

    def __init__(self, vocab_size: int, d_model: int, cutoffs: list[int], div_val: int = 4,
                 dropout: float = 0.0, tie_to: AdaptiveInput | None = None, init_scale: float = 0.5):
        super().__init__()
        source = tie_to or AdaptiveInput(vocab_size, d_model, cutoffs, div_val, init_scale)
        self.edges = source.edges
        self.tables, self.projections = source.tables, source.projections
        n_tails = len(self.edges) - 2
        self.cluster_weight = nn.Parameter(torch.zeros(n_tails, d_model))
        self.cluster_bias = nn.Parameter(torch.zeros(n_tails))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(hi - lo))
                                       for lo, hi in zip(self.edges[:-1], self.edges[1:]))
        self.drop = nn.Dropout(dropout)

    def _head(self, h: torch.Tensor) -> torch.Tensor:  # (N, H) -> (N, n_0 + n_tails) log-probs
        weight = torch.cat([self.tables[0].weight, self.cluster_weight])
        bias = torch.cat([self.biases[0], self.cluster_bias])
        return F.log_softmax(F.linear(self.projected(h, 0), weight, bias), dim=-1)

    def projected(self, h: torch.Tensor, band: int) -> torch.Tensor:
        """h (N, d_model) -> (N, d_band) through the transposed input projection of the band."""
        projection = self.projections[band]
        return h if isinstance(projection, nn.Identity) else h @ projection.weight

    def _tail(self, h: torch.Tensor, band: int) -> torch.Tensor:  # (N, H) -> (N, n_band) log-probs in band
        logits = F.linear(self.projected(h, band), self.tables[band].weight, self.biases[band])
        return F.log_softmax(logits, dim=-1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., d_model) -> (..., V) log-probabilities (they also serve as logits: softmax gives back p)."""
        h = self.drop(hidden).reshape(-1, hidden.shape[-1])
        head = self._head(h)
        n0 = self.edges[1] - self.edges[0]
        parts = [head[:, :n0]]
        for band in range(1, len(self.edges) - 1):
            parts.append(head[:, n0 + band - 1: n0 + band] + self._tail(h, band))
        return torch.cat(parts, -1).view(*hidden.shape[:-1], self.edges[-1])

    def nll(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood (...) of `targets` (...) under hidden (..., d_model), computing each
        tail band only for the targets in it (the full (N, V) matrix is never built)."""
        h = self.drop(hidden).reshape(-1, hidden.shape[-1])
        flat = targets.reshape(-1)
        head = self._head(h)
        n0 = self.edges[1] - self.edges[0]
        in_head = flat < self.edges[1]
        out = -head.gather(1, flat.clamp(max=n0 - 1).unsqueeze(1)).squeeze(1) * in_head.to(head.dtype)
        for band in range(1, len(self.edges) - 1):
            lo, hi = self.edges[band], self.edges[band + 1]
            rows = ((flat >= lo) & (flat < hi)).nonzero().squeeze(-1)
            if rows.numel() == 0:
                continue
            lp = self._tail(h[rows], band).gather(1, (flat[rows] - lo).unsqueeze(1)).squeeze(1)
            out = out.index_copy(0, rows, -(head[rows, n0 + band - 1] + lp))
        return out.view(targets.shape)
