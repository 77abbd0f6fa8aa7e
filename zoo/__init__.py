"""spikezoo: a model zoo for spiking state space models.

    import zoo
    zoo.list_models("*spike*")
    model = zoo.load("s4d-sfmnist")
    model = zoo.create("spike_ssm", d_model=256)

Importing `zoo` imports torch, pluggy and safetensors only; timm, torchvision and fvcore are
imported where they are used.
"""

from zoo.config import ModelConfig, option
from zoo.hookspecs import hookimpl, hookspec
from zoo.hub import load, save_pretrained
from zoo.registry import ModelEntry, UnknownModelError, create, info, list_models

__version__ = "0.1.0"

__all__ = [
    "ModelConfig", "option", "hookimpl", "hookspec", "load", "save_pretrained", "ModelEntry",
    "UnknownModelError", "create", "info", "list_models", "profile", "__version__",
]


def profile(model_or_name, example_input=None, hardware=None, **kwargs):
    """Profile a model (or a registered name): see `zoo_profiler.profile`. Needs the profiler plugin."""
    try:
        from zoo_profiler import profile as _profile
    except ImportError as error:  # pragma: no cover - the profiler ships with spikezoo
        raise RuntimeError("the profiler plugin zoo_profiler is not installed") from error
    return _profile(model_or_name, example_input=example_input, hardware=hardware, **kwargs)
