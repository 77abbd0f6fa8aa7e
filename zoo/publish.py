"""`zoo push`: check a model folder completely, then publish it to the Hub as one commit.

A folder is ready when (DESIGN.md section 5) it holds exactly config.json, model.safetensors,
README.md (and tokenizer.json for a language model); config.json has the timm keys and a complete
`spikezoo` block; every file's sha256 is recorded and matches; the weights load strictly into the
architecture the config builds; and the card's YAML metadata is complete (library_name spikezoo,
license, tags, datasets, metrics and a model-index whose results are the measured metrics).
Every failure is a FolderError whose message names the file and the problem.
"""

from __future__ import annotations

import math
import os
import pprint
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.hub import (
    CARD_NAME,
    CONFIG_NAME,
    FORMAT_VERSION,
    PICKLE_SUFFIXES,
    TOKENIZER_NAME,
    WEIGHTS_NAME,
    WeightsError,
    bundled_roots,
    load_folder,
    sha256_file,
)
from zoo.registry import MODEL_NAME, UnknownModelError, registry

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
REQUIRED_CARD_FIELDS = ("library_name", "license", "tags", "datasets", "metrics", "model-index")


class FolderError(ValueError):
    """A model folder is not ready to publish; the message names the file and the problem."""


class PushError(RuntimeError):
    """The Hub could not be reached, refused the token, or refused the upload."""


@dataclass
class FolderCheck:
    """What `validate_folder` established about a publishable folder."""

    folder: Path
    name: str
    architecture: str
    config: dict[str, Any]  # the full, validated architecture config
    task: str
    dataset: str
    license: str
    paper: str
    metrics: dict[str, float]
    files: dict[str, str]  # file name -> sha256: exactly what gets uploaded
    parameters: int
    tensors: int
    bundled: bool  # the folder is model_cards/<name>: the package ships it
    notes: list[str] = field(default_factory=list)  # worth saying, not errors

    def entry_source(self, repo_id: str | None = None, revision: str | None = None) -> str:
        """Python source of the `zoo.ModelEntry(...)` that registers this model."""
        fields = {
            "name": self.name, "architecture": self.architecture, "config": self.config,
            "task": self.task, "dataset": self.dataset, "license": self.license, "paper": self.paper,
            "hf_hub_id": repo_id, "revision": revision, "filename": WEIGHTS_NAME,
            "sha256": self.files[WEIGHTS_NAME], "bundled": self.bundled, "measured": self.metrics,
        }
        lines = []
        for key, value in fields.items():
            text = pprint.pformat(value, width=92 - len(key), sort_dicts=False)
            text = text.replace("\n", "\n" + " " * (len(key) + 5))  # align under the opening bracket
            lines.append(f"    {key}={text},")
        return "zoo.ModelEntry(\n" + "\n".join(lines) + "\n)"


@dataclass
class PushResult:
    check: FolderCheck
    repo_id: str
    commit: str | None  # None for a dry run
    commit_url: str | None

    def entry_source(self) -> str:
        return self.check.entry_source(self.repo_id, self.commit)


# ---- validation ---------------------------------------------------------------------------------
def validate_folder(folder: str | os.PathLike) -> FolderCheck:
    """Check everything `zoo push` checks, without the network.

    Raises FolderError naming the file and the problem.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FolderError(f"{folder} is not a folder")
    files = {name: sha256_file(folder / name) for name in check_files(folder)}
    cfg = read_config(folder)
    block = cfg["spikezoo"]
    check_hashes(block, files)
    config = check_config(cfg)
    parameters, tensors = check_weights(folder)
    if block["task"] == "lm" and TOKENIZER_NAME not in files:
        raise FolderError(f"{folder}: a language model needs {TOKENIZER_NAME} beside its weights")
    card = check_card(folder, cfg)
    notes = []
    paper = card.get("paper") or ""
    if not paper:
        notes.append(f"{CARD_NAME} names no paper (metadata key 'paper'): expected for a paper's model")
    name = block["name"]
    bundled = folder.name == name and any(folder.resolve().parent == r.resolve() for r in bundled_roots())
    return FolderCheck(
        folder=folder, name=name, architecture=cfg["architecture"], config=config, task=block["task"],
        dataset=block["dataset"], license=card["license"], paper=paper,
        metrics={k: float(v) for k, v in block["metrics"].items()},
        files=files, parameters=parameters, tensors=tensors,
        bundled=bundled, notes=notes,
    )


def check_files(folder: Path) -> list[str]:
    """The files to upload; raise FolderError for a missing, pickled or unexpected one.

    Hidden files (.gitattributes, .DS_Store) are neither checked nor uploaded.
    """
    present = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    pickles = [f for f in present if f.endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise FolderError(f"{folder}: pickled checkpoint {pickles[0]} cannot be published: spikezoo "
                          f"loads only {WEIGHTS_NAME}")
    missing = [f for f in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME) if f not in present]
    if missing:
        raise FolderError(f"{folder}: missing {', '.join(missing)} (write the folder with zoo.save_pretrained)")
    allowed = {CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, TOKENIZER_NAME}
    extra = [f for f in present if f not in allowed or not (folder / f).is_file()]
    if extra:
        raise FolderError(f"{folder}: unexpected {', '.join(extra)}; a model folder holds exactly "
                          f"{', '.join(sorted(allowed))} (the last for language models only)")
    return present


def read_config(folder: Path) -> dict[str, Any]:
    """config.json, with its schema checked (timm keys and the spikezoo block)."""
    import json

    path = folder / CONFIG_NAME
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FolderError(f"{path} is not valid JSON: {error}") from None
    where = CONFIG_NAME
    require(cfg, dict, where, "")
    require(cfg, str, where, "architecture")
    require(cfg, int, where, "num_classes")
    require(cfg, dict, where, "model_args")
    require(cfg, dict, where, "pretrained_cfg")
    block = require(cfg, dict, where, "spikezoo")
    arch_in_cfg = cfg["pretrained_cfg"].get("architecture", cfg["architecture"])
    if arch_in_cfg != cfg["architecture"]:
        raise FolderError(f"{where}: pretrained_cfg.architecture {arch_in_cfg!r} differs from "
                          f"architecture {cfg['architecture']!r}")
    version = require(block, int, where, "spikezoo.format_version")
    if not 1 <= version <= FORMAT_VERSION:
        raise FolderError(f"{where}: spikezoo.format_version {version} is not one this spikezoo writes "
                          f"(1..{FORMAT_VERSION})")
    name = require(block, str, where, "spikezoo.name")
    if not MODEL_NAME.match(name):
        raise FolderError(f"{where}: spikezoo.name {name!r} must be kebab-case, like 'spike-ssm-wikitext103'")
    task = require(block, str, where, "spikezoo.task")
    if cfg["model_args"].get("task", task) != task:
        raise FolderError(f"{where}: spikezoo.task {task!r} differs from model_args.task "
                          f"{cfg['model_args']['task']!r}")
    if not require(block, str, where, "spikezoo.dataset"):
        raise FolderError(f"{where}: spikezoo.dataset is empty: name the data the metrics were measured on")
    spec = require(block, dict, where, "spikezoo.input_spec")
    for key in ("type", "shape"):
        if key not in spec:
            raise FolderError(f"{where}: spikezoo.input_spec lacks {key!r}")
    require(block, dict, where, "spikezoo.neuron")
    metrics = require(block, dict, where, "spikezoo.metrics")
    if not metrics:
        raise FolderError(f"{where}: spikezoo.metrics is empty: publish measured numbers "
                          f"(zoo.save_pretrained(..., metrics={{'accuracy': ...}}))")
    for metric, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise FolderError(f"{where}: spikezoo.metrics.{metric} is {value!r}, not a finite number")
    require(block, dict, where, "spikezoo.files")
    return cfg


def require(mapping: dict, kind: type, where: str, dotted: str):
    """mapping[dotted's last key], checked to be a `kind`; FolderError naming the key otherwise."""
    value = mapping
    if dotted:
        key = dotted.rsplit(".", 1)[-1]
        if key not in mapping:
            raise FolderError(f"{where} lacks {dotted!r}")
        value = mapping[key]
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise FolderError(f"{where}: {dotted or 'the top level'} must be a {kind.__name__}, "
                          f"got {type(value).__name__}")
    return value


def check_hashes(block: dict[str, Any], files: dict[str, str]) -> None:
    """Every shipped file except the card and config has its sha256 recorded, and it matches.

    `files` maps each file name to its actual sha256.
    """
    recorded = block["files"]
    for name, actual in files.items():
        if name in (CONFIG_NAME, CARD_NAME):
            continue  # config.json holds the hashes; the card may be edited after saving
        entry = recorded.get(name)
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(sha, str) or not SHA256.match(sha):
            raise FolderError(f"{CONFIG_NAME}: spikezoo.files has no sha256 for {name}")
        if actual != sha:
            raise FolderError(f"{name}: sha256 {actual} does not match the {sha} recorded in {CONFIG_NAME}; "
                              f"the file is corrupt or was changed after saving")
    stale = sorted(set(recorded) - set(files))
    if stale:
        raise FolderError(f"{CONFIG_NAME}: spikezoo.files records {', '.join(stale)}, which the folder lacks")


def check_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The full config dict; FolderError if the architecture is unknown or the config is invalid."""
    try:
        arch = registry.architecture(cfg["architecture"])
    except UnknownModelError as error:
        raise FolderError(f"{CONFIG_NAME}: architecture {cfg['architecture']!r} is not registered "
                          f"(is its plugin installed? see `zoo plugins`): {error}") from None
    try:
        return arch.config_cls.from_dict(cfg["model_args"]).to_dict()
    except (ValueError, TypeError) as error:
        raise FolderError(f"{CONFIG_NAME}: model_args do not build a {arch.name!r} model: {error}") from None


def check_weights(folder: Path) -> tuple[int, int]:
    """Load the folder with zoo.load's strict loader; (parameter count, tensor count).

    FolderError if the weights do not load or hold NaN/inf values.
    """
    import torch

    try:
        model = load_folder(folder)
    except WeightsError as error:
        raise FolderError(f"{WEIGHTS_NAME}: {error}") from None
    except Exception as error:  # noqa: BLE001 - a model constructor may raise anything
        raise FolderError(f"{CONFIG_NAME}: the model does not build: {type(error).__name__}: {error}") from None
    state = model.state_dict()
    bad = [k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise FolderError(f"{WEIGHTS_NAME}: non-finite values in {', '.join(bad[:5])}")
    return sum(p.numel() for p in model.parameters()), len(state)


def check_card(folder: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """The card's metadata, checked complete and consistent with config.json."""
    from huggingface_hub import ModelCard

    path = folder / CARD_NAME
    try:
        card = ModelCard.load(path)
    except Exception as error:  # noqa: BLE001 - YAML and model-index errors come in several types
        raise FolderError(f"{CARD_NAME}: metadata cannot be parsed: {str(error).splitlines()[0]}") from None
    meta = card.data.to_dict()
    missing = [key for key in REQUIRED_CARD_FIELDS if not meta.get(key)]
    if missing:
        raise FolderError(f"{CARD_NAME}: card metadata lacks {', '.join(missing)} (write the card with "
                          f"zoo.save_pretrained, or add them to its YAML header)")
    block = cfg["spikezoo"]
    if meta["library_name"] != "spikezoo":
        raise FolderError(f"{CARD_NAME}: library_name is {meta['library_name']!r}, not 'spikezoo'")
    if "spikezoo" not in as_list(meta["tags"]):
        raise FolderError(f"{CARD_NAME}: tags lack 'spikezoo'")
    if card.data.model_name != block["name"]:
        raise FolderError(f"{CARD_NAME}: model-index names {card.data.model_name!r}, config.json "
                          f"names {block['name']!r}")
    cfg_license = cfg["pretrained_cfg"].get("license")
    if cfg_license and cfg_license != meta["license"]:
        raise FolderError(f"{CARD_NAME}: license {meta['license']!r} differs from {cfg_license!r} in {CONFIG_NAME}")
    cfg_paper = cfg["pretrained_cfg"].get("paper_ids") or ""
    if cfg_paper and meta.get("paper") != cfg_paper:
        raise FolderError(f"{CARD_NAME}: paper {meta.get('paper')!r} differs from {cfg_paper!r} in {CONFIG_NAME}")
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    for metric, value in block["metrics"].items():
        if metric not in results:
            raise FolderError(f"{CARD_NAME}: model-index has no result for the measured metric {metric!r}")
        if not math.isclose(float(results[metric]), float(value), rel_tol=1e-9, abs_tol=1e-12):
            raise FolderError(f"{CARD_NAME}: model-index gives {metric}={results[metric]}, "
                              f"{CONFIG_NAME} measured {value}")
    unlisted = sorted(set(block["metrics"]) - set(as_list(meta["metrics"])))
    if unlisted:
        raise FolderError(f"{CARD_NAME}: metadata 'metrics' lacks {', '.join(unlisted)}")
    return meta


def as_list(value) -> list:
    """A YAML field that may hold one item or a list of them."""
    return value if isinstance(value, list) else [value]


# ---- upload -------------------------------------------------------------------------------------
def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    token: str | None = None,
) -> PushResult:
    """Validate `folder`, then upload it to the Hub model repo `repo_id` in one commit.

    The repo is created if needed (`private` applies only then); `revision` names a branch, created
    from main if missing. The token comes from `token`, HF_TOKEN or the huggingface_hub login.
    `dry_run` stops after validation. Raises ValueError for a malformed repo id, FolderError for a
    folder that is not ready, PushError when there is no token or the Hub cannot be reached or
    refuses the upload.
    """
    if not REPO_ID.match(repo_id):
        raise ValueError(f"--repo must look like 'org/name', got {repo_id!r}")
    check = validate_folder(folder)
    if dry_run:
        return PushResult(check, repo_id, None, None)
    import huggingface_hub

    import zoo

    token = token or huggingface_hub.get_token()
    if not token:
        raise PushError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`")
    api = huggingface_hub.HfApi(token=token, library_name="spikezoo", library_version=zoo.__version__)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=check.folder, revision=revision,
            allow_patterns=sorted(check.files),  # exactly the checked files
            commit_message=f"Upload {check.name} with spikezoo {zoo.__version__}",
        )
    except Exception as error:  # noqa: BLE001 - every Hub failure becomes one clear line
        raise hub_failure(error, repo_id) from error
    return PushResult(check, repo_id, commit.oid, commit.commit_url)


def hub_failure(error: Exception, repo_id: str) -> PushError:
    """One line that says what went wrong talking to the Hub."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    first = (str(error).splitlines() or [""])[0]
    if isinstance(error, OfflineModeIsEnabled):
        return PushError(f"cannot reach the Hugging Face Hub: offline mode is on (HF_HUB_OFFLINE is set); "
                         f"unset it to push {repo_id}")
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else None
        if status == 401:
            return PushError("the Hugging Face Hub refused the token (401 unauthorized): set HF_TOKEN to a "
                             "valid write token or log in with `hf auth login`")
        if status == 403:
            return PushError(f"the token may not write to {repo_id} (403 forbidden): use a write token "
                             f"of a member of its organisation")
        return PushError(f"the Hugging Face Hub refused the upload to {repo_id} ({status}): {first}")
    if isinstance(error, (ConnectionError, TimeoutError)) or is_transport_error(error):
        return PushError(f"cannot reach the Hugging Face Hub at {constants.ENDPOINT}: {first or type(error).__name__} "
                         f"(no network?); {repo_id} was not updated")
    return PushError(f"upload to {repo_id} failed: {type(error).__name__}: {first}")


def is_transport_error(error: Exception) -> bool:
    """A connection-level failure of the HTTP client huggingface_hub uses (httpx2 since 2.0)."""
    try:
        from httpx2 import TransportError
    except ImportError:  # older huggingface_hub speaks requests, whose errors are ConnectionErrors
        return False
    return isinstance(error, TransportError)
