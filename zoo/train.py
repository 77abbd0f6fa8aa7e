"""Training and evaluation for every architecture in the zoo.

    from zoo.train import TrainConfig, train, evaluate
    result = train("s4d-sfmnist", "sfmnist", config=TrainConfig(epochs=5), out="runs/s4d-sfmnist/model")

The recipe: AdamW with the SSM parameter groups (`zoo.nn.param_groups`), linear warm-up then a
cosine decay, gradient-norm clipping, and a seed that fixes the initialisation, the data order and
every dropout mask (the random generator is reseeded from (seed, step, rank) at each step, so a
resumed run takes exactly the steps an uninterrupted one would).

Checkpoints are one safetensors file (model tensors, optimizer tensors, and the trainer state as
JSON metadata), written to a temporary file and moved into place with `os.replace`, so a run killed
at any moment leaves the previous checkpoint intact. No pickles. A run with a time budget
(`max_minutes`) stops at a step boundary, saves, and the same command resumes it.

Under `torchrun` (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel (gloo on CPU,
nccl on CUDA); each rank takes its share of every global batch, and rank 0 writes the files.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
from zoo.data import DataModule, get_datamodule
from zoo.data.base import Split
from zoo.nn import param_groups

CHECK_SUBSET = 200  # the card records the accuracy on the first CHECK_SUBSET test examples


@dataclass
class TrainConfig:
    """Optimisation and run settings; everything that decides the result is recorded in the card."""

    epochs: int = field(default=10, metadata={"doc": "passes over the training split"})
    batch_size: int = field(default=64, metadata={"doc": "global batch, split evenly over DDP processes"})
    lr: float = field(default=4e-3, metadata={"doc": "peak AdamW learning rate (SSM A, dt keep their own)"})
    weight_decay: float = field(default=0.05, metadata={"doc": "AdamW weight decay (not on norms, biases, SSM A, dt)"})
    warmup_steps: int = field(default=200, metadata={"doc": "linear warm-up steps before the cosine decay"})
    min_lr_ratio: float = field(default=0.0, metadata={"doc": "the cosine ends at lr * min_lr_ratio"})
    grad_clip: float = field(default=1.0, metadata={"doc": "max gradient norm; 0 disables clipping"})
    seed: int = field(default=0, metadata={"doc": "fixes initialisation, data order and dropout masks"})
    eval_batch_size: int = field(default=256, metadata={"doc": "batch size of evaluation (recorded with the check)"})
    limit_train: int | None = field(default=None, metadata={"doc": "train on the first N examples only"})
    max_minutes: float | None = field(default=None, metadata={
        "doc": "time budget of this invocation; then checkpoint and stop (rerun to resume)"})
    stop_after_steps: int | None = field(default=None, metadata={
        "doc": "checkpoint and stop once this many steps are done in total"})
    checkpoint_minutes: float = field(default=5.0, metadata={"doc": "also checkpoint this often"})
    log_every: int = field(default=50, metadata={"doc": "steps between log lines (without a progress bar)"})
    device: str = field(default="auto", metadata={"doc": "auto (CUDA when available), cpu, cuda, cuda:1, ..."})

    def __post_init__(self):
        for key in ("epochs", "batch_size", "eval_batch_size", "log_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"train option {key!r} must be at least 1, got {getattr(self, key)}")
        for key in ("lr", "weight_decay", "grad_clip", "min_lr_ratio", "warmup_steps"):
            if getattr(self, key) < 0:
                raise ValueError(f"train option {key!r} must not be negative, got {getattr(self, key)}")


@dataclass
class TrainResult:
    model: nn.Module
    finished: bool  # False when a time budget or stop_after_steps ended this part early
    step: int
    total_steps: int
    metrics: dict[str, float] = field(default_factory=dict)  # test metrics (when finished)
    history: list[dict[str, Any]] = field(default_factory=list)
    out: Path | None = None


# ---- distributed helpers ------------------------------------------------------------------------
class Dist:
    """Rank and world size; set up from torchrun's environment variables when WORLD_SIZE > 1."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        if self.world == 1:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    return torch.device(name)


# ---- schedule -----------------------------------------------------------------------------------
def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Multiplier of the base learning rates at `step` (0-based): linear warm-up, then cosine."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7_919 + rank * 104_729) % (2**63 - 1)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of the training examples in `epoch` (the same on every rank)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


# ---- checkpoints --------------------------------------------------------------------------------
def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """One safetensors file: model/<key>, optim/<param index>/<name>, and the trainer state as
    JSON metadata (including the optimizer's param groups). Written atomically."""
    from safetensors.torch import save_file

    tensors = {f"model/{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, values in opt["state"].items():
        for key, value in values.items():
            tensors[f"optim/{index}/{key}"] = torch.as_tensor(value).detach().contiguous().cpu()
    meta = {"trainer": json.dumps({**state, "param_groups": opt["param_groups"]})}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model and optimizer from `save_checkpoint`'s file; returns the trainer state.

    Raises ValueError when the checkpoint does not fit the model (different architecture/config).
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        state = json.loads(f.metadata()["trainer"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    model_state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    try:
        model.load_state_dict(model_state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"checkpoint {path} does not fit this model (other architecture or config?): "
                         f"{str(error).splitlines()[0]}") from None
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            opt_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": state.pop("param_groups")})
    return state


# ---- evaluation ---------------------------------------------------------------------------------
def batch_metrics(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """(summed loss, correct predictions, count) for classification (B, C) or LM (B, L, V) logits."""
    logits = logits.reshape(-1, logits.shape[-1]).float()
    targets = targets.reshape(-1)
    loss = F.cross_entropy(logits, targets, reduction="sum")
    return loss, int((logits.argmax(-1) == targets).sum()), targets.numel()


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, *, batch_size: int = 256, limit: int | None = None,
             device: str | torch.device = "cpu", dist: Dist | None = None, progress: bool = False,
             seed: int = 0) -> dict[str, float]:
    """Loss and accuracy of `model` (eval mode) on the first `limit` examples of `split` (all if None).

    The random generator is seeded with `seed` inside (and restored afterwards), so models that
    sample spikes at inference give the same result for the same examples and batch size.
    Returns {"accuracy", "loss", "n"} (loss per target: per image, or per token for a language model,
    in nats) and, for language models, "bits_per_token" and "perplexity". Under DDP the ranks share
    the examples and the sums are all-reduced.
    """
    was_training = model.training
    model.eval()
    n = len(split) if limit is None else min(limit, len(split))
    rank, world = (dist.rank, dist.world) if dist else (0, 1)
    indices = torch.arange(n)[rank::world]
    loss_sum, correct, count = 0.0, 0, 0
    bar = make_progress(progress)
    with bar, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        task = bar.add_task("eval", total=len(indices), loss=float("nan"), acc=float("nan"))
        for start in range(0, len(indices), batch_size):
            x, y = split.batch(indices[start:start + batch_size])
            loss, c, k = batch_metrics(model(x.to(device)), y.to(device))
            loss_sum, correct, count = loss_sum + float(loss), correct + c, count + k
            bar.update(task, advance=len(y), loss=loss_sum / count, acc=correct / count)
    if dist:
        loss_sum, correct, count = dist.sum([loss_sum, correct, count], torch.device(device))
    model.train(was_training)
    out = {"accuracy": correct / count, "loss": loss_sum / count, "n": int(n)}
    if getattr(getattr(model, "config", None), "task", "") == "lm":
        out["bits_per_token"] = out["loss"] / math.log(2)
        out["perplexity"] = math.exp(out["loss"])
    return out


@torch.no_grad()
def spike_rates(model: nn.Module, x: torch.Tensor, seed: int = 0) -> dict[str, Any]:
    """Firing rates of the modules marked `spiking_neuron = True` on input x (eval mode, random
    generator seeded for stochastic neurons): {"overall": all non-zero spikes / all neuron outputs,
    or None without spiking modules, "modules": {name: that module's rate}}."""
    counts: dict[str, list[int]] = {}
    hooks = []
    for name, module in model.named_modules():
        if getattr(type(module), "spiking_neuron", False):
            def hook(mod, args, output, name=name):
                spikes = output[0] if isinstance(output, tuple) else output
                count = counts.setdefault(name, [0, 0])
                count[0] += int((spikes != 0).sum())
                count[1] += spikes.numel()
            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    spikes, outputs = sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())
    return {"overall": spikes / outputs if outputs else None,
            "modules": {name: c[0] / c[1] for name, c in counts.items() if c[1]}}


def profile_costs(model: nn.Module, x: torch.Tensor, seed: int = 0) -> dict[str, Any] | None:
    """Counts and energy estimates of one forward pass on x from the profiler plugin (`zoo.profile`):
    MACs, ACs, FLOPs, neuron updates, firing rate, network sparsity, energy per hardware profile (J)
    and the ops it could not count. The random generator is seeded (stochastic neurons), so the
    numbers repeat. None when the profiler plugin is not installed."""
    try:
        from zoo_profiler import profile
    except ImportError:
        return None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        report = profile(model, example_input=x)
    totals = report.totals
    return {
        "input_shape": list(x.shape),
        **{k: totals[k] for k in ("macs", "acs", "flops", "neuron_updates", "firing_rate")},
        "network_sparsity": report.sparsity["network"],
        "energy_j": dict(report.energy_j),
        "uncounted_ops": sorted(report.uncounted),
    }


# ---- progress -----------------------------------------------------------------------------------
def make_progress(enabled: bool):
    """A rich progress bar with loss and accuracy columns (a no-op when disabled)."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.4f}"),
        TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled, transient=False,
    )


def log(dist: Dist, message: str) -> None:
    if dist.main:
        print(message, flush=True)


# ---- training -----------------------------------------------------------------------------------
def model_folder(name: str) -> Path | None:
    """`name` as a model folder (a directory with config.json), else None."""
    path = Path(name)
    return path if (path / "config.json").is_file() else None


def build_model(name: str, data: DataModule, overrides: dict[str, Any]) -> tuple[nn.Module, str]:
    """The model to train: a model folder's weights (to continue or fine-tune), or fresh weights for
    a pretrained entry's configuration or an architecture; with the config keys the data fixes."""
    from zoo.registry import registry

    keys = {**data.model_config(), **overrides}
    if model_folder(name):
        model = zoo.load(name, **keys)
        return model, model.architecture
    registry.fill()
    model = zoo.create(name, **keys)
    entry = registry.models.get(name)
    return model, entry.architecture if entry else name


def default_datamodule(name: str, data_dir: str | None, options: dict[str, Any]) -> DataModule:
    """The data a model folder records in its input spec, or the data set a pretrained entry names.

    Raises ValueError when `name` names no data set (an architecture).
    """
    from zoo.data import from_input_spec
    from zoo.registry import registry

    folder = model_folder(name)
    if folder:
        spec = json.loads((folder / "config.json").read_text()).get("spikezoo", {}).get("input_spec", {})
        return from_input_spec(spec, data_dir)
    registry.fill()
    entry = registry.models.get(name)
    if entry is None or not entry.dataset:
        raise ValueError(f"{name!r} names no data set: pass one (e.g. --dataset sfmnist)")
    return get_datamodule(entry.dataset, data_dir, **options)


def train(
    name: str,
    data: DataModule | str | None = None,
    *,
    config: TrainConfig | None = None,
    data_dir: str | None = None,
    data_options: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    checkpoint: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    model_name: str | None = None,
    command: str | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train `name` on `data` (a DataModule or a data-module name). `name` is a pretrained entry
    (its configuration, fresh weights; default data: its data set), an architecture, or a model
    folder (its weights are trained further; default data: the one in its input spec).

    `checkpoint`: resumable checkpoint file (resumed from when it exists). `out`: where the final
    model folder is written (save_pretrained) once training is finished; `model_name` its name.
    `command`: the command line recorded in the card (default: this process's argv).

    Raises ValueError for bad options or a checkpoint that does not fit, MissingDataError when the
    data set's files are absent.
    """
    config = config or TrainConfig()
    device = pick_device(config.device)
    dist = Dist(device)
    if config.batch_size % dist.world:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the {dist.world} processes")
    if isinstance(data, str):
        data = get_datamodule(data, data_dir, **(data_options or {}))
    elif data is None:
        data = default_datamodule(name, data_dir, data_options or {})
    progress = sys.stdout.isatty() if progress is None else progress
    progress = progress and dist.main

    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model, arch = build_model(name, data, overrides or {})
    model.to(device).train()
    optimizer = torch.optim.AdamW(param_groups(model, config.lr, config.weight_decay))
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]

    train_split = data.split("train")
    if config.limit_train:
        train_split = train_split.subset(torch.arange(min(config.limit_train, len(train_split))))
    steps_per_epoch = len(train_split) // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"the training split has {len(train_split)} examples, fewer than one batch "
                         f"of {config.batch_size}")
    total_steps = steps_per_epoch * config.epochs
    command = command or " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])

    state: dict[str, Any] = {
        "step": 0, "elapsed_s": 0.0, "parts": [], "history": [], "train_config": asdict(config),
        "name": name, "architecture": arch, "model_config": model.config.to_dict(),
        "data": {"name": data.name, "options": data.options}, "world_size": dist.world,
    }
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt and ckpt.is_file():
        saved = load_checkpoint(ckpt, model, optimizer)
        changed = sorted(k for k in RESULT_KEYS if saved["train_config"].get(k) != state["train_config"].get(k))
        if saved["model_config"] != state["model_config"]:
            changed.append("model config")
        if not same_data(saved["data"], state["data"]):
            changed.append("data")
        if changed:
            raise ValueError(f"checkpoint {ckpt} was made with a different train config: {', '.join(changed)}; "
                             f"use a new checkpoint path or the original settings")
        state.update({k: saved[k] for k in ("step", "elapsed_s", "parts", "history")})
        log(dist, f"resuming from {ckpt} at step {state['step']}/{total_steps}")
    if state["step"] < total_steps:  # a finished run asked again only re-evaluates and rewrites the folder
        state["parts"].append({"command": command, "start_step": state["step"], "world_size": dist.world})

    net: nn.Module = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    started = last_save = time.monotonic()
    elapsed_before = state["elapsed_s"]

    def save() -> None:
        state["elapsed_s"] = elapsed_before + time.monotonic() - started
        if ckpt and dist.main:
            save_checkpoint(ckpt, model, optimizer, state)

    step = state["step"]
    stopped_early = False
    running = {"loss": float("nan"), "acc": float("nan")}
    bar = make_progress(progress)
    with bar:
        task = bar.add_task(f"train {name}", total=total_steps, completed=step, loss=float("nan"), acc=float("nan"))
        order_epoch, order = -1, torch.empty(0)
        while step < total_steps:
            epoch, index = divmod(step, steps_per_epoch)
            if epoch != order_epoch:
                order_epoch, order = epoch, epoch_order(len(train_split), config.seed, epoch)
            batch_ids = order[index * config.batch_size:(index + 1) * config.batch_size]
            x, y = train_split.batch(batch_ids[dist.rank::dist.world])
            torch.manual_seed(step_seed(config.seed, step, dist.rank))
            factor = lr_factor(step, total_steps, config.warmup_steps, config.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
            logits = net(x.to(device))
            loss_sum, correct, count = batch_metrics(logits, y.to(device))
            loss = loss_sum / count
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            state["step"] = step
            running = smooth(running, loss.item(), correct / count)
            bar.update(task, completed=step, **running)
            if not progress and step % config.log_every == 0:
                log(dist, f"step {step}/{total_steps} epoch {epoch + 1} loss {running['loss']:.4f} "
                          f"acc {running['acc']:.4f} lr {optimizer.param_groups[0]['lr']:.2e} "
                          f"elapsed {elapsed_before + time.monotonic() - started:.0f}s")
            if step % steps_per_epoch == 0 and "val" in data.splits:
                val = evaluate(model, data.split("val"), batch_size=config.eval_batch_size, device=device, dist=dist)
                state["history"].append({"epoch": step // steps_per_epoch, "step": step, "train_loss": running["loss"],
                                         "val_accuracy": val["accuracy"], "val_loss": val["loss"]})
                log(dist, f"epoch {step // steps_per_epoch}: val accuracy {val['accuracy']:.4f} loss {val['loss']:.4f}")
            budget_over = config.max_minutes is not None and time.monotonic() - started >= config.max_minutes * 60
            if step < total_steps and (budget_over or step == config.stop_after_steps):
                stopped_early = True
                break
            if time.monotonic() - last_save >= config.checkpoint_minutes * 60:
                save()
                last_save = time.monotonic()
    save()
    dist.barrier()
    result = TrainResult(model=model, finished=not stopped_early, step=step, total_steps=total_steps,
                         history=state["history"])
    if stopped_early:
        how = f"run the same command again to resume from {ckpt}" if ckpt else "no checkpoint path was given"
        log(dist, f"stopped at step {step}/{total_steps} (time budget or stop_after_steps); {how}")
        return result
    result.metrics = finish(model, data, config, state, device, dist, out, model_name or name, progress)
    result.out = Path(out) if out else None
    return result


# Train options that change the result; a resumed run must keep them (budget options may change).
RESULT_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "warmup_steps", "min_lr_ratio", "grad_clip",
               "seed", "limit_train")


def same_data(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same data module and the same value for every option both records name (an option added to
    a data module later, with its default, does not invalidate older checkpoints)."""
    shared = a["options"].keys() & b["options"].keys()
    return a["name"] == b["name"] and all(a["options"][k] == b["options"][k] for k in shared)


def smooth(running: dict[str, float], loss: float, acc: float, beta: float = 0.98) -> dict[str, float]:
    if math.isnan(running["loss"]):
        return {"loss": loss, "acc": acc}
    return {"loss": beta * running["loss"] + (1 - beta) * loss, "acc": beta * running["acc"] + (1 - beta) * acc}


def finish(model: nn.Module, data: DataModule, config: TrainConfig, state: dict[str, Any], device: torch.device,
           dist: Dist, out: str | os.PathLike | None, name: str, progress: bool) -> dict[str, float]:
    """Evaluate on the full test split, measure spikes and costs, and write the model folder."""
    test = data.split("test")
    full = evaluate(model, test, batch_size=config.eval_batch_size, device=device, dist=dist, progress=progress)
    log(dist, f"test ({full['n']:,} examples): " + ", ".join(f"{k} {v:.4f}" for k, v in full.items() if k != "n"))
    if not (out and dist.main):
        dist.barrier()
        return full
    model = model.cpu().eval()
    folder = write_model_folder(model, data, Path(out), name=name, test=full, state=state, config=config)
    log(dist, f"wrote {folder}")
    dist.barrier()
    return full


def write_model_folder(model: nn.Module, data: DataModule, out: Path, *, name: str, test: dict[str, float],
                       state: dict[str, Any], config: TrainConfig) -> Path:
    """save_pretrained with the measured metrics, the reproducibility check, spikes, costs and the
    training record (command, wall time, settings) in the card."""
    test_split = data.split("test")
    check = evaluate(model, test_split, batch_size=config.eval_batch_size, limit=CHECK_SUBSET)
    x, _ = test_split.batch(torch.arange(min(8, len(test_split))))
    rates = spike_rates(model, x)
    costs = profile_costs(model, x[:1])
    metrics = {data.metric: test[data.metric], "loss": test["loss"]}
    if data.metric != "accuracy":
        metrics["accuracy"] = test["accuracy"]
    if rates["overall"] is not None:
        metrics["firing_rate"] = rates["overall"]
    evaluation = {
        "split": "test", "n": test["n"], **{k: v for k, v in test.items() if k != "n"},
        "check": {"split": "test", "indices": f"0:{check['n']}", "batch_size": config.eval_batch_size, "seed": 0,
                  "accuracy": check["accuracy"], "loss": check["loss"]},
    }
    sections = {
        "Training": training_section(state, config, data),
        "Evaluation": evaluation_section(name, data, test, check),
    }
    sections["Spiking activity and cost"] = cost_section(rates, costs, len(x))
    return zoo.save_pretrained(
        model, out, name=name, dataset=data.dataset, metrics=metrics, input_spec=data.input_spec(),
        tokenizer=data.tokenizer(), card_sections=sections,
        extra={"evaluation": evaluation, "spike_rates": rates, "costs": costs},
    )


def hms(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def training_section(state: dict[str, Any], config: TrainConfig, data: DataModule) -> str:
    parts = state["parts"]
    lines = [
        f"Trained by this project with `zoo.train` on {data.describe()}.",
        "",
        "```bash\n" + parts[0]["command"] + "\n```",
        "",
        (f"Wall time: **{hms(state['elapsed_s'])}** of training ({state['elapsed_s'] / 60:.1f} min, "
         f"{len(parts)} part{'s' if len(parts) > 1 else ''}; the same command resumes from the checkpoint) on "
         f"{machine()}, torch {torch.__version__}, {state['world_size']} process(es)."),
        "",
        (f"{state['step']:,} steps = {config.epochs} epochs of batch {config.batch_size}; AdamW lr {config.lr} "
         f"(SSM A and dt: their own lr, no weight decay), weight decay {config.weight_decay}, warm-up "
         f"{config.warmup_steps} steps, cosine to {config.min_lr_ratio} x lr, gradient clip {config.grad_clip}, "
         f"seed {config.seed}."),
    ]
    if state["history"]:
        lines += ["", "| epoch | train loss (smoothed) | val accuracy | val loss |", "|---|---|---|---|"]
        lines += [f"| {h['epoch']} | {h['train_loss']:.4f} | {h['val_accuracy']:.4f} | {h['val_loss']:.4f} |"
                  for h in state["history"]]
    return "\n".join(lines)


def evaluation_section(name: str, data: DataModule, test: dict[str, float], check: dict[str, float]) -> str:
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in test.items() if k != "n")
    return (f"Full test split ({test['n']:,} examples):\n\n| metric | value |\n|---|---|\n{rows}\n\n"
            f"Rerun: `zoo eval {name}`. Quick check recorded in config.json (`spikezoo.evaluation.check`): "
            f"accuracy {check['accuracy']:.4f} on the first {check['n']} test examples "
            f"(`zoo eval {name} --limit {check['n']}`).")


def cost_section(rates: dict[str, Any], costs: dict[str, Any] | None, n_inputs: int) -> str:
    if rates["overall"] is not None:
        text = (f"Firing rate measured on the first {n_inputs} test inputs: **{rates['overall']:.4f}** "
                f"(non-zero spikes / neuron outputs over {len(rates['modules'])} spiking modules).\n\n"
                "| module | firing rate |\n|---|---|\n"
                + "\n".join(f"| `{k}` | {v:.4f} |" for k, v in rates["modules"].items()))
    else:
        text = "This model has no spiking neurons (dense baseline)."
    if costs is None:
        return text + ("\n\nEnergy: not measured (the profiler plugin `zoo_profiler` was not installed when "
                       "this card was written); run `zoo profile` on this model.")
    rate = "-" if costs["firing_rate"] is None else f"{costs['firing_rate']:.4f}"
    text += (f"\n\nProfiler (`zoo.profile`, one test input of shape {tuple(costs['input_shape'])}): "
             f"{costs['macs']:,} MACs, {costs['acs']:,} ACs, {costs['flops']:,} FLOPs, "
             f"{costs['neuron_updates']:,} neuron updates, firing rate {rate}."
             "\n\n| hardware profile | estimated energy per input |\n|---|---|\n"
             + "\n".join(f"| {k} | {v * 1e6:.4g} µJ |" for k, v in costs["energy_j"].items()))
    if costs["uncounted_ops"]:
        text += "\n\nOps the profiler could not count (not in the totals): " + ", ".join(costs["uncounted_ops"])
    return text


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{cpu} ({threads} thread{'s' if threads != 1 else ''})"


def evaluate_pretrained(name: str, *, data_dir: str | None = None, split: str = "test", limit: int | None = None,
                        batch_size: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Load a pretrained model (name or folder), rebuild its data module from the input spec in its
    config.json, and evaluate it. When the evaluation is the one recorded with the model (the full
    test split, or the check subset), the result says whether it matches the recorded accuracy.

    Raises what `zoo.load` raises, ValueError when the model records no data module,
    MissingDataError when the data set's files are absent.
    """
    from zoo.data import from_input_spec

    model = zoo.load(name)
    block = model.pretrained_cfg.get("spikezoo", {})
    data = from_input_spec(block.get("input_spec", {}), data_dir)
    recorded = block.get("evaluation") or {}
    check = recorded.get("check") or {}
    batch_size = batch_size or check.get("batch_size") or 256
    metrics = evaluate(model, data.split(split), batch_size=batch_size, limit=limit, progress=progress,
                       seed=check.get("seed", 0))
    n = metrics.pop("n")
    result: dict[str, Any] = {"name": name, "split": split, "n": n, "metrics": metrics, "recorded": None}
    if split == recorded.get("split") and n == recorded.get("n"):
        result.update(recorded=recorded["accuracy"], recorded_what="test accuracy")
    elif split == check.get("split") and f"0:{n}" == check.get("indices"):
        result.update(recorded=check["accuracy"], recorded_what=f"accuracy on the first {n} test examples")
    if result["recorded"] is not None:
        result["matches"] = metrics["accuracy"] == result["recorded"]
    return result


# ---- results table ------------------------------------------------------------------------------
RESULT_HARDWARE = ("45nm-fp32", "loihi")


def bundled_models(dataset: str | None = None) -> list[str]:
    """Names of the registered entries whose weights ship with spikezoo (bundled folders), the dense
    S4D baselines first; only those of `dataset` (an entry's data set name) when given."""
    from zoo.hub import weights_available
    from zoo.registry import registry

    registry.fill()
    names = [n for n, e in sorted(registry.models.items())
             if e.bundled and weights_available(e) == "bundled" and dataset in (None, e.dataset)]
    return sorted(names, key=lambda n: registry.models[n].architecture != "s4d")


def results(names: list[str] | None = None, *, dataset: str | None = None, limit: int | None = None,
            data_dir: str | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """Evaluate models (default: every bundled model, or those of `dataset`) on their test sets and
    profile one test input.

    One row per model: accuracy now and as recorded in its card, parameters, firing rate, MACs, ACs,
    and estimated energy per input on 45 nm CMOS (fp32) and Loihi. Raises what `evaluate_pretrained`
    raises; RuntimeError when the profiler plugin is missing.
    """
    from zoo.data import from_input_spec

    rows = []
    for name in names or bundled_models(dataset):
        evaluated = evaluate_pretrained(name, data_dir=data_dir, limit=limit, progress=progress)
        model = zoo.load(name)
        block = model.pretrained_cfg["spikezoo"]
        data = from_input_spec(block["input_spec"], data_dir)
        x, _ = data.split("test").batch(torch.arange(1))
        costs = profile_costs(model, x)
        if costs is None:
            raise RuntimeError("the results table needs the profiler plugin zoo_profiler")
        rows.append({
            "name": block.get("name", name), "architecture": model.pretrained_cfg["architecture"],
            "dataset": block["dataset"],
            "n": evaluated["n"], "accuracy": evaluated["metrics"]["accuracy"],
            "card_accuracy": (block.get("evaluation") or {}).get("accuracy"),
            "parameters": sum(p.numel() for p in model.parameters()),
            "firing_rate": costs["firing_rate"], "macs": costs["macs"], "acs": costs["acs"],
            **{f"energy_{h}_j": costs["energy_j"].get(h) for h in RESULT_HARDWARE},
        })
    return rows


def results_markdown(rows: list[dict[str, Any]]) -> str:
    """The rows of `results` as a markdown table; energy also relative to the dense S4D baseline
    (the first row of architecture `s4d` on the same data set). For a language model the accuracy
    is next-token accuracy."""
    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    head = ("| model | data set | test accuracy | card | parameters | firing rate | MACs | ACs | "
            + " | ".join(f"energy {h} (µJ, x dense)" for h in RESULT_HARDWARE) + " |")
    lines = [head, "|" + "---|" * (8 + len(RESULT_HARDWARE))]
    for r in rows:
        dense = next((d for d in rows if d["architecture"] == "s4d" and d["dataset"] == r["dataset"]), None)
        energy = []
        for h in RESULT_HARDWARE:
            e = r[f"energy_{h}_j"]
            base = dense[f"energy_{h}_j"] if dense else None
            ratio = f" ({e / base:.2f}x)" if e is not None and base else ""
            energy.append(fmt(None if e is None else e * 1e6, ".4g") + ratio)
        lines.append(f"| {r['name']} | {r['dataset']} | {fmt(r['accuracy'], '.4f')} (n={r['n']:,}) | {fmt(r['card_accuracy'], '.4f')} | "
                     f"{r['parameters']:,} | {fmt(r['firing_rate'], '.4f')} | {r['macs']:,} | {r['acs']:,} | "
                     + " | ".join(energy) + " |")
    return "\n".join(lines)


README_MARKERS = ("<!-- zoo results: start -->", "<!-- zoo results: end -->")


def replace_results_block(path: str | os.PathLike, table: str) -> None:
    """Put `table` between the README_MARKERS lines of the file at `path` (atomically).

    Raises ValueError when the file lacks the two markers in order.
    """
    path = Path(path)
    text = path.read_text()
    start, end = README_MARKERS
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"{path} has no results block: add the lines {start!r} and {end!r} where the table goes")
    new = text[:i + len(start)] + "\n" + table.strip() + "\n" + text[j:]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)
