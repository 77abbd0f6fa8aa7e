"""Test isolation: no network, only the built-in plugins, temporary plugins removed afterwards."""

import os

# Set before huggingface_hub is imported anywhere: it reads these once, at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Installed third-party plugins must not leak into the run: load only the built-ins.
BUILTIN_PLUGINS = "s4d,binary_s4d,gsu,spike_ssm,p_spikessm,profiler"
os.environ["SPIKEZOO_PLUGINS"] = BUILTIN_PLUGINS
os.environ.pop("SPIKEZOO_STRICT_PLUGINS", None)

import pytest  # noqa: E402
import torch  # noqa: E402

from zoo import plugins  # noqa: E402
from zoo.registry import registry  # noqa: E402


@pytest.fixture
def temp_plugin():
    """Register plugin objects for one test: `temp_plugin(obj, name)`; removed afterwards."""
    added = []

    def add(obj, name):
        plugins.load_plugins()
        plugins.register_plugin(obj, name)
        added.append(name)
        registry.reset()
        return obj

    yield add
    for name in added:
        plugins.unregister_plugin(name)
    registry.reset()


# Test tensors are tiny: one intra-op thread avoids thread hand-off costs and oversubscribing the
# 2-core machines (several times faster under load); results do not depend on it.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
