"""Plugin loading, in one place: entry points of the group `spikezoo`, built-ins included.

A plugin that fails to import, or raises inside a hook, is skipped with a warning naming it and
recorded as broken; `SPIKEZOO_STRICT_PLUGINS=1` re-raises instead. `SPIKEZOO_PLUGINS=a,b` loads
only the named entry points.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from dataclasses import dataclass

import pluggy

from zoo import hookspecs

ENTRY_POINT_GROUP = "spikezoo"

pm = pluggy.PluginManager("spikezoo")
pm.add_hookspecs(hookspecs)


@dataclass
class PluginStatus:
    name: str
    module: str
    version: str | None
    status: str  # "loaded" or "broken"
    error: str | None = None


class PluginWarning(UserWarning):
    """A plugin was skipped because it failed."""


_status: dict[str, PluginStatus] = {}
_loaded = False


def strict() -> bool:
    return os.environ.get("SPIKEZOO_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


def mark_broken(name: str, module: str, version: str | None, error: BaseException, where: str) -> None:
    """Record a failing plugin; warn, or re-raise in strict mode."""
    message = f"{type(error).__name__}: {error}"
    _status[name] = PluginStatus(name, module, version, "broken", f"{where}: {message}")
    if strict():
        raise error
    warnings.warn(f"spikezoo plugin {name!r} skipped ({where}): {message}", PluginWarning, stacklevel=3)


def load_plugins() -> None:
    """Import every entry point of the group once; later calls do nothing."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    only = {n.strip() for n in os.environ.get("SPIKEZOO_PLUGINS", "").split(",") if n.strip()}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if only and ep.name not in only:
            continue
        if pm.get_plugin(ep.name) is not None or ep.name in _status:
            continue
        version = ep.dist.version if ep.dist else None
        try:
            module = ep.load()
        except Exception as error:  # noqa: BLE001 - any failure in a plugin must not take the zoo down
            mark_broken(ep.name, ep.value, version, error, "import")
            continue
        register_plugin(module, ep.name, version)
    pm.check_pending()


def register_plugin(module, name: str, version: str | None = None) -> None:
    """Add a plugin object (module or class instance) under `name`. Tests use this directly."""
    pm.register(module, name=name)
    _status[name] = PluginStatus(name, getattr(module, "__name__", str(module)), version, "loaded")


def unregister_plugin(name: str) -> None:
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
    _status.pop(name, None)


def plugin_status() -> list[PluginStatus]:
    load_plugins()
    return sorted(_status.values(), key=lambda s: s.name)


def call_register_hook(hook_name: str, commit, discard=None) -> None:
    """Run `hook_name(register)` on each plugin separately, then `commit(plugin_name, *args)`
    for each thing it registered.

    Registrations are buffered per plugin and committed only if its hook returns. If the hook or a
    commit raises, `discard(plugin_name)` removes what that plugin had already committed, so a
    failing plugin leaves nothing half-registered; it is unregistered and reported as broken.
    """
    load_plugins()
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        name = pm.get_name(impl.plugin)
        calls: list[tuple[tuple, dict]] = []
        try:
            impl.function(register=lambda *args, **kwargs: calls.append((args, kwargs)))
            for args, kwargs in calls:
                commit(name, *args, **kwargs)
        except Exception as error:  # noqa: BLE001
            if discard is not None:
                discard(name)
            status = _status.get(name)
            pm.unregister(impl.plugin)
            mark_broken(name, status.module if status else str(impl.plugin),
                        status.version if status else None, error, hook_name)
