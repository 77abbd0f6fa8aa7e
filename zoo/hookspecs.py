"""The hooks a spikezoo plugin can implement. Each hands the plugin a `register` callable."""

import pluggy

hookspec = pluggy.HookspecMarker("spikezoo")
hookimpl = pluggy.HookimplMarker("spikezoo")


@hookspec
def register_architectures(register):
    """Register architectures: `register(name, config_cls, model_cls, description="")`.

    `config_cls` is a dataclass subclassing `zoo.ModelConfig`; `model_cls(config)` builds the model.
    """


@hookspec
def register_models(register):
    """Register pretrained model entries: `register(zoo.ModelEntry(...))`."""


@hookspec
def register_hardware(register):
    """Register energy profiles for the profiler: `register(profile)`."""


@hookspec
def register_op_costs(register):
    """Register profiler cost rules for a plugin's own operators: `register(op, rule)`."""
