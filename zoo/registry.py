"""The registry: architectures and pretrained model entries contributed by plugins."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import torch.nn as nn

from zoo import plugins
from zoo.config import ModelConfig

ARCH_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
MODEL_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")


class UnknownModelError(KeyError, ValueError):
    """No architecture or pretrained model has this name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass
class Architecture:
    name: str
    config_cls: type[ModelConfig]
    model_cls: Callable[[ModelConfig], nn.Module]
    description: str = ""
    plugin: str = ""


@dataclass
class ModelEntry:
    """A named pretrained model: architecture, full config, weight source, provenance, metrics.

    `reported` holds the paper's numbers, `measured` what this project measured with its own
    weights; the two are never mixed. Weights come from `hf_hub_id` (revision pinned to a commit
    once published) and/or a bundled folder in `model_cards/<name>`.
    """

    name: str
    architecture: str
    config: dict[str, Any] = field(default_factory=dict)
    task: str = ""
    dataset: str = ""
    license: str = "apache-2.0"
    paper: str = ""
    description: str = ""
    hf_hub_id: str | None = None
    revision: str | None = None
    filename: str = "model.safetensors"
    sha256: str | None = None
    bundled: bool = False
    reported: dict[str, float] = field(default_factory=dict)
    measured: dict[str, float] = field(default_factory=dict)
    notes: str = ""
    plugin: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Registry:
    """Architectures and model entries, filled lazily from the plugin hooks."""

    def __init__(self) -> None:
        self.architectures: dict[str, Architecture] = {}
        self.models: dict[str, ModelEntry] = {}
        self._filled = False

    def fill(self) -> None:
        if self._filled:
            return
        self._filled = True
        plugins.call_register_hook("register_architectures", self.add_architecture, self.discard)
        plugins.call_register_hook("register_models", self.add_model, self.discard)

    def discard(self, plugin: str) -> None:
        """Remove everything `plugin` registered (it failed part-way)."""
        self.models = {k: e for k, e in self.models.items() if e.plugin != plugin}
        self.architectures = {k: a for k, a in self.architectures.items() if a.plugin != plugin}

    def reset(self) -> None:
        """Forget everything; the next query asks the plugins again (used after (un)registering)."""
        self.architectures.clear()
        self.models.clear()
        self._filled = False

    def add_architecture(self, plugin: str, name: str, config_cls: type, model_cls: Callable,
                         description: str = "") -> None:
        if not ARCH_NAME.match(name):
            raise ValueError(f"architecture name {name!r} must be a snake_case identifier")
        if not (isinstance(config_cls, type) and issubclass(config_cls, ModelConfig)):
            raise TypeError(f"architecture {name!r}: config_cls must subclass zoo.ModelConfig")
        if name in self.architectures:
            raise ValueError(f"architecture {name!r} is already registered")
        self.architectures[name] = Architecture(name, config_cls, model_cls, description, plugin)

    def add_model(self, plugin: str, entry: ModelEntry) -> None:
        if not MODEL_NAME.match(entry.name):
            raise ValueError(f"model name {entry.name!r} must be kebab-case, like 'spike-ssm-wikitext103'")
        if entry.name in self.models:
            raise ValueError(f"model {entry.name!r} is already registered")
        if entry.architecture not in self.architectures:
            raise ValueError(f"model {entry.name!r} names unknown architecture {entry.architecture!r}")
        if entry.revision is not None and not COMMIT.match(entry.revision):
            raise ValueError(f"model {entry.name!r}: revision must be a 40-hex commit, got {entry.revision!r}")
        self.architectures[entry.architecture].config_cls.from_dict(entry.config)  # validates keys
        self.models[entry.name] = dataclasses.replace(entry, plugin=plugin)

    # ---- lookups ------------------------------------------------------------------------------
    def architecture(self, name: str) -> Architecture:
        self.fill()
        if name in self.architectures:
            return self.architectures[name]
        raise self.unknown(name)

    def entry(self, name: str) -> ModelEntry:
        self.fill()
        if name in self.models:
            return self.models[name]
        raise self.unknown(name)

    def unknown(self, name: str) -> UnknownModelError:
        names = sorted(self.architectures) + sorted(self.models)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "; see `zoo list`"
        return UnknownModelError(f"unknown model or architecture {name!r}{hint}")

    def names(self, pattern: str = "*", pretrained: bool | None = None) -> list[str]:
        self.fill()
        from zoo.hub import weights_available  # local: hub imports the registry

        archs = [] if pretrained else sorted(self.architectures)
        models = []
        if pretrained is not False:
            models = [n for n in sorted(self.models)
                      if not pretrained or weights_available(self.models[n]) != "none"]
        return [n for n in archs + models if fnmatch.fnmatchcase(n, pattern)]


registry = Registry()


def build_config(arch: Architecture, values: dict[str, Any]) -> ModelConfig:
    return arch.config_cls.from_dict(values)


def create(name: str, **overrides) -> nn.Module:
    """Build an architecture, or a pretrained entry's configuration, with random weights.

    Raises UnknownModelError (suggesting close names) and ValueError for a bad config key or value.
    """
    registry.fill()
    if name in registry.models:
        entry = registry.models[name]
        arch = registry.architecture(entry.architecture)
        config = build_config(arch, {**entry.config, **overrides})
    else:
        arch = registry.architecture(name)
        config = build_config(arch, overrides)
    return instantiate(arch, config)


def instantiate(arch: Architecture, config: ModelConfig) -> nn.Module:
    model = arch.model_cls(config)
    model.architecture = arch.name  # type: ignore[assignment]
    return model


def list_models(pattern: str = "*", pretrained: bool | None = None) -> list[str]:
    """Names matching the fnmatch `pattern`: architectures and pretrained entries.

    pretrained=True: only entries whose weights can be had (bundled, cached or on the Hub);
    pretrained=False: only architectures; None: both.
    """
    return registry.names(pattern, pretrained)


def info(name: str) -> dict[str, Any]:
    """A JSON-able description of an architecture or a pretrained entry.

    Pretrained entries include their parameter count, the paper's `reported` metrics and the
    `measured` ones separately, and where their weights are (`weights`).
    """
    from zoo.hub import weights_available

    registry.fill()
    if name in registry.models:
        entry = registry.models[name]
        arch = registry.architecture(entry.architecture)
        config = build_config(arch, entry.config)
        return {
            "name": name, "kind": "pretrained", **entry.to_dict(),
            "config": config.to_dict(), "parameters": count_parameters(arch, config),
            "weights": weights_available(entry),
        }
    arch = registry.architecture(name)
    config = arch.config_cls()
    return {
        "name": name, "kind": "architecture", "description": arch.description, "plugin": arch.plugin,
        "config": config.to_dict(), "options": arch.config_cls.describe(),
        "parameters": count_parameters(arch, config),
        "pretrained": sorted(m for m, e in registry.models.items() if e.architecture == name),
    }


def count_parameters(arch: Architecture, config: ModelConfig) -> int:
    """Parameter count without allocating weights (meta device)."""
    import torch

    with torch.device("meta"):
        model = arch.model_cls(config)
    return sum(p.numel() for p in model.parameters())
