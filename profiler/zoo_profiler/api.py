"""`profile()`: resolve the model and its input, count one forward pass, price it on each profile."""

from __future__ import annotations

import sys
import warnings
from typing import Any, Iterable

import torch
import torch.nn as nn

from zoo_profiler.counter import count
from zoo_profiler.hardware import HardwareProfile
from zoo_profiler.report import Report, build
from zoo_profiler.rules import Rule, op_key


class RandomWeightsWarning(UserWarning):
    """A model was profiled with random weights: its spike rates say little about trained ones."""


# ---- what the plugins registered ----------------------------------------------------------------
def _own_plugin_loaded() -> bool:
    from zoo import plugins

    plugins.load_plugins()
    me = sys.modules["zoo_profiler"]
    return any(plugin is me for plugin in plugins.pm.get_plugins())


def registered_hardware() -> dict[str, HardwareProfile]:
    """All hardware profiles registered through `register_hardware`, by name.

    The built-in ones are always present, even when the profiler plugin is not loaded as a plugin
    (e.g. SPIKEZOO_PLUGINS excludes it). A plugin registering a name twice, or a profile that fails
    validation, is reported as broken (zoo.plugins).
    """
    import zoo_profiler
    from zoo import plugins

    profiles: dict[str, HardwareProfile] = {}

    def commit(plugin: str, profile: HardwareProfile) -> None:
        if not isinstance(profile, HardwareProfile):
            raise TypeError(f"register_hardware expects a zoo_profiler.HardwareProfile, got {type(profile).__name__}")
        profile.validate()
        if profile.name in profiles:
            raise ValueError(f"hardware profile {profile.name!r} is already registered "
                             f"(by {profiles[profile.name].plugin or 'the profiler'})")
        profile.plugin = plugin
        profiles[profile.name] = profile

    if not _own_plugin_loaded():
        zoo_profiler.register_hardware(lambda p: commit("profiler", p))
    def discard(plugin: str) -> None:
        for name in [n for n, p in profiles.items() if p.plugin == plugin]:
            del profiles[name]

    plugins.call_register_hook("register_hardware", commit, discard)
    return profiles


def registered_rules() -> dict[str, Rule]:
    """All op cost rules: the built-ins, then plugins' rules, which may replace a built-in one.

    Two plugins registering the same op is an error (the second is reported as broken).
    """
    import zoo_profiler
    from zoo import plugins

    builtin: dict[str, Rule] = {}
    extra: dict[str, Rule] = {}
    owner: dict[str, str] = {}
    me = sys.modules["zoo_profiler"]

    def commit(plugin: str, op: Any, rule: Rule) -> None:
        key = op_key(op)
        if not callable(rule):
            raise TypeError(f"register_op_costs({key!r}, ...): the rule must be callable, got {rule!r}")
        if plugins.pm.get_plugin(plugin) is me:
            builtin[key] = rule
            return
        if key in extra:
            raise ValueError(f"a cost rule for {key!r} is already registered by plugin {owner[key]!r}")
        extra[key], owner[key] = rule, plugin

    if not _own_plugin_loaded():
        zoo_profiler.register_op_costs(lambda op, rule: builtin.__setitem__(op_key(op), rule))
    def discard(plugin: str) -> None:
        for key in [k for k, p in owner.items() if p == plugin]:
            del extra[key], owner[key]

    plugins.call_register_hook("register_op_costs", commit, discard)
    return {**builtin, **extra}


def select_hardware(hardware: str | Iterable[str] | None) -> list[HardwareProfile]:
    """Profiles by name ("loihi,h100" or a list); None means all. Unknown names: ValueError."""
    available = registered_hardware()
    if hardware is None:
        return list(available.values())
    names = [n.strip() for n in hardware.split(",")] if isinstance(hardware, str) else list(hardware)
    names = [n for n in names if n]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown hardware profile(s) {', '.join(map(repr, unknown))}; "
                         f"available: {', '.join(available)}")
    return [available[n] for n in names]


# ---- model and input ----------------------------------------------------------------------------
def resolve_model(name: str, overrides: dict[str, Any] | None) -> tuple[nn.Module, str, list[str]]:
    """(model, weights, warnings): pretrained weights when they exist, else random ones (warned)."""
    import zoo
    from zoo.hub import WeightsUnavailableError

    overrides = dict(overrides or {})
    try:
        return zoo.load(name, **overrides), "pretrained", []
    except WeightsUnavailableError:
        pass
    reason = "an architecture" if name in zoo.list_models(pretrained=False) else "no weights exist yet"
    message = (f"profiling {name!r} with random weights ({reason}): spike rates, sparsity and energy "
               f"of random weights say little about a trained model")
    warnings.warn(message, RandomWeightsWarning, stacklevel=3)
    return zoo.create(name, **overrides), "random", [message]


def make_input(model: nn.Module, batch: int, length: int | None) -> Any:
    if not hasattr(model, "example_input"):
        raise ValueError(f"{type(model).__name__} has no example_input(): pass example_input to profile()")
    kwargs = {"batch": batch}
    if length is not None:
        kwargs["length"] = length
    x = model.example_input(**kwargs)
    param = next(model.parameters(), None)
    if param is not None and isinstance(x, torch.Tensor):
        x = x.to(param.device)
    return x


def _describe_input(x: Any) -> dict[str, Any]:
    if isinstance(x, torch.Tensor):
        return {"shape": list(x.shape), "dtype": str(x.dtype).replace("torch.", ""), "device": x.device.type}
    if isinstance(x, (tuple, list)):
        return {"items": [_describe_input(v) for v in x]}
    if isinstance(x, dict):
        return {"items": {k: _describe_input(v) for k, v in x.items()}}
    return {"type": type(x).__name__}


# ---- the entry point ----------------------------------------------------------------------------
def profile(
    model_or_name: nn.Module | str,
    example_input: Any = None,
    hardware: str | Iterable[str] | None = None,
    *,
    length: int | None = None,
    batch: int = 1,
    overrides: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
    measure_energy: bool | None = None,
    energy_seconds: float = 2.0,
) -> Report:
    """Count MACs, ACs, FLOPs, neuron updates and spikes of one forward pass; estimate energy.

    model_or_name: a module, or a registered name (pretrained entry or architecture; without
        weights it is built with random weights and a RandomWeightsWarning).
    example_input: a tensor, a tuple of positional inputs or a dict of keyword inputs; by default
        `model.example_input(batch, length)`.
    hardware: profile names ("loihi,h100" or a list); None = every registered profile.
    length, batch: size of the generated example input (length defaults to the config's seq_len).
    overrides: config keys for a model built from a name (e.g. {"d_model": 64}).
    device: move the model there first (a given module is moved in place), e.g. "cuda".
    measure_energy: measure GPU energy with NVML; None = when the model is on CUDA.

    Runs in eval mode under torch.no_grad (the training flag is restored afterwards).
    Raises ValueError for an unknown hardware name, a bad argument combination, or a model without
    example_input() when no input is given; UnknownModelError for an unknown name.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if length is not None and length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if example_input is not None and length is not None:
        raise ValueError("length only sizes a generated example input; do not pass both")
    profiles = select_hardware(hardware)
    rules = registered_rules()
    notes: list[str] = []
    if isinstance(model_or_name, str):
        name = model_or_name
        model, weights, notes = resolve_model(name, overrides)
    elif isinstance(model_or_name, nn.Module):
        if overrides:
            raise ValueError("overrides apply to a model built from a name, not to a module")
        model, weights = model_or_name, "given"
        name = getattr(model, "architecture", type(model).__name__)
    else:
        raise ValueError(f"expected an nn.Module or a model name, got {type(model_or_name).__name__}")

    if device is not None:
        model.to(torch.device(device))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = make_input(model, batch, length) if example_input is None else example_input
            counts, _ = count(model, x, rules)
            info = {
                "model": {"name": name, "class": type(model).__name__,
                          "architecture": getattr(model, "architecture", None), "weights": weights,
                          "parameters": sum(p.numel() for p in model.parameters())},
                "input": _describe_input(x),
                "warnings": notes,
            }
            report = build(counts, model, profiles, info)
            on_cuda = any(p.is_cuda for p in model.parameters())
            if measure_energy or (measure_energy is None and on_cuda):
                from zoo_profiler.nvml import measure_gpu_energy

                report._data["measured"] = measure_gpu_energy(model, x, seconds=energy_seconds)
    finally:
        model.train(was_training)
    return report
