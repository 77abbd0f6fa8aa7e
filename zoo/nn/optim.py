"""Optimizer parameter groups from the `_optim` rules that SSM parameters carry."""

from __future__ import annotations

import torch.nn as nn


def param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups: one for ordinary parameters (global lr and weight decay), one per distinct
    `_optim` rule (SSM parameters: own lr, weight decay 0). Norms and biases get no weight decay.
    """
    default, no_decay, special = [], [], {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        rule = getattr(p, "_optim", None)
        if rule is not None:
            special.setdefault(tuple(sorted(rule.items())), []).append(p)
        elif p.dim() < 2 or name.endswith(".bias"):
            no_decay.append(p)
        else:
            default.append(p)
    groups = [{"params": default, "lr": lr, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0})
    for rule, params in special.items():
        groups.append({"params": params, "lr": lr, "weight_decay": weight_decay, **dict(rule)})
    return groups
