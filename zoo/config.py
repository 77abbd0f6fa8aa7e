"""Architecture configs: one dataclass per architecture, all sharing the common sequence keys.

A field may carry validation in its metadata: `choices` (allowed values), `min`/`max` (inclusive
bounds) or `check` (a callable returning an error message or None). `ModelConfig.validate()` runs
them; `ModelConfig.from_dict()` also refuses unknown keys, naming them.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from typing import Any


def option(default, *, choices=None, min=None, max=None, doc: str = "", **kw):
    """A dataclass field with validation rules and a one-line description."""
    meta = {"doc": doc}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if min is not None:
        meta["min"] = min
    if max is not None:
        meta["max"] = max
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass
class ModelConfig:
    """Keys every architecture understands (DESIGN.md section 4)."""

    # backbone
    d_model: int = option(128, min=1, doc="channels H of the residual stream")
    d_state: int = option(64, min=2, doc="SSM state size N (N/2 complex modes)")
    n_layers: int = option(4, min=1, doc="number of residual blocks")
    dropout: float = option(0.0, min=0.0, max=0.999, doc="dropout rate inside blocks")
    tie_dropout: bool = option(True, doc="share the dropout mask over time (DropoutNd)")
    bidirectional: bool = option(False, doc="two-sided SSM kernel (no step mode)")
    prenorm: bool = option(False, doc="norm before the layer (True) or after the residual add")
    norm: str = option("batch", choices=("batch", "layer", "none"), doc="normalisation over channels")
    # input / task head
    task: str = option("classification", choices=("classification", "lm", "retrieval"),
                      doc="head: classification, language model, or two-document retrieval")
    d_input: int = option(1, min=1, doc="features per time step for real-valued input")
    vocab_size: int = option(0, min=0, doc="token vocabulary; 0 means real-valued input")
    n_classes: int = option(10, min=1, doc="classes for the classification head")
    pooling: str = option("mean", choices=("mean", "last"), doc="sequence pooling before the classifier")
    seq_len: int = option(784, min=1, doc="sequence length of the input spec (example inputs)")
    # SSM core
    ssm_init: str = option("lin", choices=("lin", "inv", "real"), doc="S4D-Lin, S4D-Inv or S4D-Real init of A")
    discretization: str = option("zoh", choices=("zoh", "bilinear"), doc="ZOH or bilinear discretisation")
    dt_min: float = option(1e-3, min=1e-8, doc="smallest initial step size")
    dt_max: float = option(1e-1, min=1e-8, doc="largest initial step size")
    ssm_lr: float = option(1e-3, min=0.0, doc="learning rate of A and dt (weight decay 0); 0 freezes")

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first key whose value breaks its rule."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            _check_type(f.name, value, hints[f.name])
            meta = f.metadata
            if "choices" in meta and value not in meta["choices"]:
                raise ValueError(f"config key {f.name!r}: {value!r} is not one of {list(meta['choices'])}")
            if "min" in meta and value < meta["min"]:
                raise ValueError(f"config key {f.name!r}: {value!r} is below the minimum {meta['min']}")
            if "max" in meta and value > meta["max"]:
                raise ValueError(f"config key {f.name!r}: {value!r} is above the maximum {meta['max']}")
        if self.d_state % 2:
            raise ValueError(f"config key 'd_state': {self.d_state} must be even (conjugate pairs)")
        if self.dt_min > self.dt_max:
            raise ValueError(f"config key 'dt_min': {self.dt_min} is larger than dt_max {self.dt_max}")
        if self.task == "lm" and not self.vocab_size:
            raise ValueError("config key 'vocab_size': a language model (task='lm') needs a vocabulary")
        if self.task == "retrieval" and not self.vocab_size:
            raise ValueError("config key 'vocab_size': the retrieval task reads token ids")
        if self.task == "lm" and self.bidirectional:
            raise ValueError("config key 'bidirectional': a language model must be causal")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        """Build a config from a dict; unknown keys are a ValueError that suggests the closest key."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ValueError(f"unknown config key {key!r} for {cls.__name__}{hint}")
        return cls(**values)

    def replace(self, **overrides) -> "ModelConfig":
        return type(self).from_dict({**self.to_dict(), **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        """One row per key: name, default, allowed values, description (for `zoo info`, cards)."""
        rows = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append({"key": f.name, "default": default, "choices": f.metadata.get("choices"),
                         "doc": f.metadata.get("doc", "")})
        return rows


def _check_type(name: str, value: Any, hint: Any) -> None:
    origin = typing.get_origin(hint)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        options = typing.get_args(hint)
    else:
        options = (hint,)
    for opt in options:
        if opt is type(None) and value is None:
            return
        base = typing.get_origin(opt) or opt
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if base in (bool, str, list, dict, tuple) and isinstance(value, base):
            return
        if base not in (float, int, bool, str, list, dict, tuple, type(None)):
            return  # a type this checker does not know: leave it to the key's own rules
    raise ValueError(f"config key {name!r}: {value!r} has type {type(value).__name__}, expected {hint}")
