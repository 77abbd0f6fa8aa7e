"""Saving and loading model folders (one folder = one Hub repo, DESIGN.md section 5).

A folder holds `config.json` (timm-compatible keys plus a `spikezoo` block), `model.safetensors`,
`README.md` (model card) and, for language models, `tokenizer.json`. Only safetensors are ever
loaded; pickled checkpoints are refused. Weight resolution for a registered name: the Hugging Face
cache (works offline), then the bundled folder, then a Hub download. Every file with a recorded
sha256 is checked. Writes are atomic: files are written to a temporary folder beside the target and
moved into place with `os.replace`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from zoo.registry import ModelEntry, UnknownModelError, build_config, instantiate, registry

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
TOKENIZER_NAME = "tokenizer.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pth.tar")


class WeightsError(RuntimeError):
    """Weights cannot be loaded: missing, corrupt, pickled, or not matching the architecture."""


class WeightsUnavailableError(WeightsError):
    """No weights exist for a registered model (nowhere: cache, bundled folder or Hub)."""


class IntegrityError(WeightsError):
    """A file's sha256 does not match the one recorded for it."""


# ---- saving -------------------------------------------------------------------------------------
def save_pretrained(
    model: nn.Module,
    folder: str | os.PathLike,
    *,
    name: str | None = None,
    dataset: str = "",
    metrics: dict[str, float] | None = None,
    input_spec: dict[str, Any] | None = None,
    tokenizer: dict[str, Any] | None = None,
    card_sections: dict[str, str] | None = None,
    license: str = "apache-2.0",
    paper: str = "",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `model` as a model folder: config.json, model.safetensors, README.md[, tokenizer.json].

    `metrics` are measured values (e.g. {"accuracy": 0.87}); they go into config.json and the card's
    model-index. `input_spec` describes the preprocessing so an independent program can reproduce it
    (default: the model's `input_spec()`). `extra` adds JSON-able keys to the config's `spikezoo` block
    (e.g. the trainer's evaluation record); it cannot replace the keys written here. Existing files in
    `folder` are replaced atomically. Returns the folder. Raises ValueError if the model was not built
    by `zoo.create`/`zoo.load`, or if `extra` names a key the block already has.
    """
    from safetensors.torch import save_file

    from zoo.cards import make_card

    arch_name = getattr(model, "architecture", None)
    if arch_name is None or not hasattr(model, "config"):
        raise ValueError("save_pretrained needs a model built by zoo.create or zoo.load (no architecture/config)")
    folder = Path(folder)
    name = name or folder.name
    config = model.config
    tensors = unique_state_dict(model)
    spec = input_spec or (model.input_spec() if hasattr(model, "input_spec") else default_input_spec(config))
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "architecture": arch_name})
        files = {WEIGHTS_NAME: sha256_file(tmp / WEIGHTS_NAME)}
        if tokenizer is not None:
            (tmp / TOKENIZER_NAME).write_text(json.dumps(tokenizer, indent=1))
            files[TOKENIZER_NAME] = sha256_file(tmp / TOKENIZER_NAME)
        cfg = {
            "architecture": arch_name,
            "num_classes": config.n_classes if config.task == "classification" else 0,
            "num_features": config.d_model,
            "model_args": config.to_dict(),
            "pretrained_cfg": {
                "architecture": arch_name, "tag": name, "num_classes": config.n_classes,
                "license": license, "paper_ids": paper, "input_size": [config.seq_len, config.d_input],
            },
            "spikezoo": {
                "format_version": FORMAT_VERSION,
                "name": name,
                "task": config.task,
                "dataset": dataset,
                "input_spec": spec,
                "neuron": model.neuron_recipe() if hasattr(model, "neuron_recipe") else {},
                "metrics": metrics or {},
                "files": {k: {"sha256": v} for k, v in files.items()},
            },
        }
        clash = sorted(set(extra or {}) & set(cfg["spikezoo"]))
        if clash:
            raise ValueError(f"save_pretrained: extra keys {clash} would replace keys of the spikezoo block")
        cfg["spikezoo"].update(extra or {})
        (tmp / CONFIG_NAME).write_text(json.dumps(cfg, indent=2, sort_keys=False) + "\n")
        card = make_card(model, cfg, license=license, paper=paper, extra_sections=card_sections or {})
        (tmp / CARD_NAME).write_text(card)
        folder.mkdir(exist_ok=True)
        for f in tmp.iterdir():
            os.replace(f, folder / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def unique_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with tied tensors stored once (safetensors refuses shared storage)."""
    seen: dict[tuple, str] = {}
    out = {}
    for key, t in model.state_dict().items():
        ident = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        if t.numel() and ident in seen:
            continue
        seen[ident] = key
        out[key] = t.detach().contiguous().cpu()
    return out


def default_input_spec(config) -> dict[str, Any]:
    if config.vocab_size:
        return {"type": "tokens", "dtype": "int64", "shape": ["batch", config.seq_len],
                "vocab_size": config.vocab_size}
    return {"type": "real", "dtype": "float32", "shape": ["batch", config.seq_len, config.d_input]}


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- resolving ----------------------------------------------------------------------------------
def bundled_roots() -> list[Path]:
    """Where bundled model folders are looked for: $SPIKEZOO_MODEL_CARDS, the source checkout's
    model_cards/, and the installed data folder share/spikezoo/model_cards."""
    roots = []
    if os.environ.get("SPIKEZOO_MODEL_CARDS"):
        roots.append(Path(os.environ["SPIKEZOO_MODEL_CARDS"]))
    roots.append(Path(__file__).resolve().parent.parent / "model_cards")
    roots.append(Path(sys.prefix) / "share" / "spikezoo" / "model_cards")
    return roots


def bundled_folder(name: str) -> Path | None:
    for root in bundled_roots():
        if (root / name / CONFIG_NAME).is_file() and (root / name / WEIGHTS_NAME).is_file():
            return root / name
    return None


def cached_folder(entry: ModelEntry, cache_dir=None) -> Path | None:
    """The entry's snapshot folder in the Hugging Face cache if its files are there (no network)."""
    if not entry.hf_hub_id:
        return None
    from huggingface_hub import try_to_load_from_cache

    paths = []
    for filename in (CONFIG_NAME, entry.filename):
        p = try_to_load_from_cache(entry.hf_hub_id, filename, cache_dir=cache_dir, revision=entry.revision)
        if not isinstance(p, str):
            return None
        paths.append(Path(p))
    return paths[0].parent


def weights_available(entry: ModelEntry) -> str:
    """'bundled', 'cached', 'hub' (downloadable) or 'none'."""
    if entry.bundled and bundled_folder(entry.name):
        return "bundled"
    if cached_folder(entry):
        return "cached"
    if entry.hf_hub_id:
        return "hub"
    return "none"


def download_folder(repo_id: str, revision: str | None, filename: str = WEIGHTS_NAME, cache_dir=None) -> Path:
    """config.json and the weights (and tokenizer.json if present) from the Hub or its cache.

    Works offline (HF_HUB_OFFLINE=1) when the files are cached. Raises WeightsError with one clear
    line when the repo, revision or file cannot be had.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    import zoo

    kw = dict(repo_id=repo_id, revision=revision, cache_dir=cache_dir, library_name="spikezoo",
              library_version=zoo.__version__)
    try:
        cfg = hf_hub_download(filename=CONFIG_NAME, **kw)
        hf_hub_download(filename=filename, **kw)
    except LocalEntryNotFoundError as error:
        raise WeightsError(f"{repo_id}@{revision or 'main'} is not in the Hugging Face cache and the Hub "
                           f"cannot be reached (offline or no network): {error}") from None
    except (EntryNotFoundError, HfHubHTTPError, OSError) as error:
        raise WeightsError(f"cannot download {repo_id}@{revision or 'main'}: {type(error).__name__}: "
                           f"{str(error).splitlines()[0] if str(error) else ''}") from None
    try:
        hf_hub_download(filename=TOKENIZER_NAME, **kw)
    except Exception:  # noqa: BLE001 - tokenizer.json is optional
        pass
    return Path(cfg).parent


def parse_hub_name(name: str) -> tuple[str, str | None]:
    """'hf-hub:org/repo[@rev]' -> ('org/repo', rev)."""
    body = name.split(":", 1)[1]
    repo, _, rev = body.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ValueError(f"expected 'hf-hub:org/name[@revision]', got {name!r}")
    return repo, rev or None


# ---- loading ------------------------------------------------------------------------------------
def load(name_or_path: str | os.PathLike, *, cache_dir=None, map_location: str | torch.device = "cpu",
         **overrides) -> nn.Module:
    """A model with its weights, in eval mode.

    `name_or_path`: a registered model name (`zoo list --pretrained`), `hf-hub:org/repo[@rev]`,
    `local-dir:PATH`, or a path to a model folder. `overrides` change config keys that do not affect
    the weights' shapes (e.g. `seq_len`, neuron modes).

    Raises UnknownModelError for an unknown name, WeightsUnavailableError when no weights exist
    (with the two ways forward), IntegrityError on a sha256 mismatch, WeightsError for pickled,
    corrupt or mismatching files.
    """
    name = os.fspath(name_or_path)
    expected_sha = None
    if name.startswith(("hf-hub:", "hf_hub:")):
        repo, rev = parse_hub_name(name)
        folder = download_folder(repo, rev, cache_dir=cache_dir)
    elif name.startswith("local-dir:"):
        folder = Path(name.split(":", 1)[1])
    elif os.path.sep in name or os.path.exists(name) or name.endswith(PICKLE_SUFFIXES + (".safetensors",)):
        folder = Path(name)
    else:
        folder, expected_sha = resolve_entry(name, cache_dir)
    return load_folder(folder, expected_sha=expected_sha, map_location=map_location, **overrides)


def resolve_entry(name: str, cache_dir=None) -> tuple[Path, str | None]:
    registry.fill()
    if name in registry.architectures and name not in registry.models:
        raise WeightsUnavailableError(
            f"{name!r} is an architecture, not a pretrained model: use zoo.create({name!r}) for random "
            f"weights, or one of its pretrained entries: {info_pretrained(name) or 'none yet'}")
    try:
        entry = registry.entry(name)
    except UnknownModelError:
        raise
    folder = cached_folder(entry, cache_dir)
    if folder is None and entry.bundled:
        folder = bundled_folder(entry.name)
    if folder is None and entry.hf_hub_id:
        folder = download_folder(entry.hf_hub_id, entry.revision, entry.filename, cache_dir)
    if folder is None:
        raise WeightsUnavailableError(
            f"no weights exist yet for {name!r} (not bundled, not cached, not published on the Hub). "
            f"Ways forward: zoo.create({name!r}) builds the architecture with random weights; "
            f"`zoo train {name}` trains it and writes a model folder that zoo.load can read.")
    return folder, entry.sha256


def info_pretrained(arch: str) -> str:
    return ", ".join(sorted(m for m, e in registry.models.items() if e.architecture == arch))


def load_folder(folder: Path, *, expected_sha: str | None = None, map_location="cpu", **overrides) -> nn.Module:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    if folder.is_file():
        if folder.name.endswith(PICKLE_SUFFIXES):
            raise WeightsError(pickle_refusal(folder))
        folder = folder.parent
    if not folder.is_dir():
        raise WeightsError(f"no model folder at {folder}")
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        pickles = [p.name for p in folder.iterdir() if p.name.endswith(PICKLE_SUFFIXES)]
        if pickles:
            raise WeightsError(pickle_refusal(folder / pickles[0]))
        raise WeightsError(f"{folder} has no {WEIGHTS_NAME}")
    if not (folder / CONFIG_NAME).is_file():
        raise WeightsError(f"{folder} has no {CONFIG_NAME}: config and weights must travel together")
    try:
        cfg = json.loads((folder / CONFIG_NAME).read_text())
    except json.JSONDecodeError as error:
        raise WeightsError(f"{folder / CONFIG_NAME} is not valid JSON: {error}") from None
    block = cfg.get("spikezoo", {})
    recorded = block.get("files", {}).get(WEIGHTS_NAME, {}).get("sha256")
    for sha in {s for s in (recorded, expected_sha) if s}:
        actual = sha256_file(weights)
        if actual != sha:
            raise IntegrityError(f"{weights}: sha256 {actual} does not match the recorded {sha}; "
                                 f"the file is corrupt or was changed")
    model = build_from_config(cfg, overrides)
    try:
        state = load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{weights} is not a valid safetensors file: {error}") from None
    load_state_dict_strict(model, state)
    model.pretrained_cfg = cfg  # type: ignore[assignment]
    model.model_folder = str(folder)  # type: ignore[assignment]
    tokenizer = folder / TOKENIZER_NAME
    if tokenizer.is_file() and hasattr(model, "attach_tokenizer"):
        model.attach_tokenizer(json.loads(tokenizer.read_text()))
    return model.eval()


def build_from_config(cfg: dict[str, Any], overrides: dict[str, Any] | None = None) -> nn.Module:
    """Instantiate the architecture named in a config.json dict (random weights)."""
    if "architecture" not in cfg or "model_args" not in cfg:
        raise WeightsError("config.json lacks 'architecture' or 'model_args'")
    version = cfg.get("spikezoo", {}).get("format_version", FORMAT_VERSION)
    if version > FORMAT_VERSION:
        raise WeightsError(f"config.json has format_version {version}; this spikezoo reads up to "
                           f"{FORMAT_VERSION}: upgrade spikezoo")
    arch = registry.architecture(cfg["architecture"])
    config = build_config(arch, {**cfg["model_args"], **(overrides or {})})
    return instantiate(arch, config)


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load with strict key checking; tied tensors stored once count as present."""
    own = model.state_dict()
    present = set(state)
    # a key missing from the file is fine if it shares storage with a key that is there
    by_storage = {}
    for k, t in own.items():
        by_storage.setdefault((t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape)), []).append(k)
    missing = []
    for k in own:
        if k in present:
            continue
        t = own[k]
        aliases = by_storage[(t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))]
        if not (t.numel() and any(a in present for a in aliases)):
            missing.append(k)
    unexpected = sorted(present - set(own))
    shape_errors = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in present & set(own) if state[k].shape != own[k].shape]
    if missing or unexpected or shape_errors:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(sorted(missing))}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected)}")
        if shape_errors:
            parts.append(f"shape mismatches: {'; '.join(sorted(shape_errors))}")
        raise WeightsError("weights do not match the architecture (strict loading): " + " | ".join(parts))
    model.load_state_dict(state, strict=False)


def pickle_refusal(path: Path) -> str:
    return (f"refusing to load pickled checkpoint {path}: pickles can run arbitrary code. spikezoo loads "
            f"only {WEIGHTS_NAME}; convert it once in a trusted environment with "
            f"safetensors.torch.save_file(torch.load(path, weights_only=True), '{WEIGHTS_NAME}')")
