"""Make zoo architectures available to `timm.create_model`.

    import zoo.timm_interop; zoo.timm_interop.register_timm()
    timm.create_model("s4d", d_model=64)                              # random weights
    timm.create_model("local-dir:path/to/folder", pretrained=True)    # a saved model folder
    timm.create_model("hf-hub:org/repo", pretrained=True)             # a published model

Kept out of `import zoo` because importing timm costs seconds.
"""

from __future__ import annotations

TIMM_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "pretrained_model_args")


def register_timm() -> list[str]:
    """Register every zoo architecture as a timm entrypoint; returns the names registered."""
    from timm.models import is_model, register_model

    from zoo.registry import registry

    registry.fill()
    names = []
    for name in registry.architectures:
        if not is_model(name):
            register_model(_entrypoint(name))
        names.append(name)
    return names


def _entrypoint(arch: str):
    def entrypoint(pretrained: bool = False, **kwargs):
        import zoo

        timm_args = {k: kwargs.pop(k, None) for k in TIMM_KWARGS}
        cfg = timm_args["pretrained_cfg"] or {}
        cfg = cfg if isinstance(cfg, dict) else getattr(cfg, "__dict__", {})
        saved = timm_args["pretrained_model_args"] or {}
        overrides = {k: v for k, v in kwargs.items() if saved.get(k, object()) != v}
        if pretrained and cfg.get("source") == "local-dir":
            return zoo.load(cfg["file"], **overrides)
        if pretrained and cfg.get("source") == "hf-hub":
            return zoo.load(f"hf-hub:{cfg['hf_hub_id']}", cache_dir=timm_args["cache_dir"], **overrides)
        if pretrained:
            raise ValueError(f"timm: pretrained weights for a zoo architecture come from 'local-dir:' or "
                             f"'hf-hub:' names, or from zoo.load; {arch!r} alone names no weights")
        return zoo.create(arch, **kwargs)

    entrypoint.__name__ = arch
    entrypoint.__qualname__ = arch
    entrypoint.__module__ = "zoo.timm_interop"
    return entrypoint
