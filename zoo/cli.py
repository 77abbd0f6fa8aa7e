"""The `zoo` command. Errors print one line on stderr and exit with status 1, no traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable

# Subcommands contributed by other modules: name -> (add_arguments, run). Kept as a table so a new
# command is one entry, and its heavy imports happen only when it runs.
COMMANDS: dict[str, tuple[str, Callable, Callable]] = {}


def command(name: str, help: str):
    def wrap(fn):
        COMMANDS[name] = (help, getattr(fn, "add_arguments", lambda p: None), fn)
        return fn
    return wrap


def with_arguments(add):
    def wrap(fn):
        fn.add_arguments = add
        return fn
    return wrap


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def console():
    from rich.console import Console

    return Console(soft_wrap=True)


# ---- list / info / plugins ----------------------------------------------------------------------
@command("list", "list architectures and pretrained models")
@with_arguments(lambda p: (
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. '*spike*'"),
    p.add_argument("--pretrained", action="store_true", help="only models whose weights can be had"),
    p.add_argument("--architectures", action="store_true", help="only architectures"),
    p.add_argument("--json", action="store_true"),
))
def cmd_list(args) -> None:
    from rich.table import Table

    import zoo
    from zoo.hub import weights_available
    from zoo.registry import registry

    pretrained = True if args.pretrained else (False if args.architectures else None)
    names = zoo.list_models(args.pattern, pretrained=pretrained)
    rows = []
    for name in names:
        if name in registry.models:
            e = registry.models[name]
            rows.append({"name": name, "kind": "pretrained", "architecture": e.architecture,
                         "task": e.dataset or e.task, "weights": weights_available(e)})
        else:
            rows.append({"name": name, "kind": "architecture", "architecture": name, "task": "",
                         "weights": ""})
    if args.json:
        return print_json(rows)
    table = Table("name", "kind", "architecture", "dataset", "weights")
    for r in rows:
        table.add_row(r["name"], r["kind"], r["architecture"], r["task"], r["weights"])
    console().print(table)


@command("info", "describe an architecture or a pretrained model")
@with_arguments(lambda p: (p.add_argument("name"), p.add_argument("--json", action="store_true")))
def cmd_info(args) -> None:
    import zoo

    data = zoo.info(args.name)
    if args.json:
        return print_json(data)
    out = console()
    out.print(f"[bold]{data['name']}[/bold] ({data['kind']})")
    out.print(f"parameters: {data['parameters']:,}")
    if data["kind"] == "pretrained":
        for key in ("architecture", "task", "dataset", "license", "paper", "weights"):
            out.print(f"{key}: {data[key]}")
        if data["reported"]:
            out.print("reported (paper, not measured here): " +
                      ", ".join(f"{k}={v}" for k, v in data["reported"].items()))
        out.print("measured (this project's weights): " +
                  (", ".join(f"{k}={v}" for k, v in data["measured"].items()) or "none yet"))
        if data["notes"]:
            out.print(f"notes: {data['notes']}")
    else:
        out.print(data["description"])
        if data["pretrained"]:
            out.print("pretrained entries: " + ", ".join(data["pretrained"]))
    out.print("config: " + ", ".join(f"{k}={v}" for k, v in data["config"].items()))


@command("plugins", "list plugins and their status")
@with_arguments(lambda p: p.add_argument("--json", action="store_true"))
def cmd_plugins(args) -> None:
    from dataclasses import asdict

    from rich.table import Table

    from zoo.plugins import plugin_status
    from zoo.registry import registry

    registry.fill()  # runs the hooks, which may mark more plugins broken
    rows = [asdict(s) for s in plugin_status()]
    if args.json:
        return print_json(rows)
    table = Table("name", "module", "version", "status", "error")
    for r in rows:
        table.add_row(r["name"], r["module"], r["version"] or "", r["status"], r["error"] or "")
    console().print(table)


# ---- train / eval / results --------------------------------------------------------------------
def parse_assignments(items: list[str] | None, what: str) -> dict:
    """KEY=VALUE pairs; VALUE is read as JSON when it parses (numbers, true, lists), else a string."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    import dataclasses

    from zoo.train import TrainConfig

    p.add_argument("name", help="pretrained entry (its config and data set), architecture, or model folder "
                                "(trained further)")
    p.add_argument("--dataset", help="data module (sfmnist, psfmnist, listops, ...); default: the entry's")
    p.add_argument("--data", metavar="DIR", help="folder with the data set's files (default: its usual place)")
    p.add_argument("--data-option", action="append", metavar="KEY=VALUE", help="data module option")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="model config override")
    p.add_argument("--checkpoint", metavar="FILE",
                   help="resumable checkpoint (default runs/NAME/checkpoint.safetensors)")
    p.add_argument("--out", metavar="DIR", help="final model folder (default runs/NAME/model)")
    p.add_argument("--model-name", help="name written into the model folder (default NAME)")
    p.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    for f in dataclasses.fields(TrainConfig):
        kind = {"int": int, "float": float, "str": str}[str(f.type).split(" ")[0]]
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=None,
                       help=f"{f.metadata['doc']} (default {f.default})")


@command("train", "train a model; resumable; the result is a model folder with its card")
@with_arguments(add_train_arguments)
def cmd_train(args) -> None:
    import dataclasses
    from pathlib import Path

    from zoo.train import TrainConfig, train

    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
               if getattr(args, f.name) is not None}
    run_dir = Path("runs") / Path(args.name).name
    result = train(
        args.name, args.dataset, config=TrainConfig(**options), data_dir=args.data,
        data_options=parse_assignments(args.data_option, "--data-option"),
        overrides=parse_assignments(args.set, "--set"),
        checkpoint=args.checkpoint or run_dir / "checkpoint.safetensors",
        out=args.out or run_dir / "model", model_name=args.model_name,
        progress=False if args.no_progress else None,
    )
    if not result.finished:
        print(f"stopped at step {result.step}/{result.total_steps}; run the same command to resume")


@command("eval", "evaluate a pretrained model or model folder on its test set")
@with_arguments(lambda p: (
    p.add_argument("name", help="pretrained entry name or model folder"),
    p.add_argument("--data", metavar="DIR", help="folder with the data set's files (default: its usual place)"),
    p.add_argument("--split", default="test"),
    p.add_argument("--limit", type=int, help="only the first N examples"),
    p.add_argument("--batch-size", type=int, help="default: the one recorded with the model's check"),
    p.add_argument("--json", action="store_true"),
))
def cmd_eval(args) -> None:
    from zoo.train import evaluate_pretrained

    result = evaluate_pretrained(args.name, data_dir=args.data, split=args.split, limit=args.limit,
                                 batch_size=args.batch_size, progress=not args.json)
    if args.json:
        return print_json(result)
    out = console()
    out.print(f"[bold]{args.name}[/bold] on {result['split']} ({result['n']:,} examples): " +
              ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items()))
    if result.get("recorded") is not None:
        verdict = "matches" if result["matches"] else "DIFFERS FROM"
        out.print(f"{verdict} the recorded {result['recorded_what']}: {result['recorded']:.4f}")


# ---- publishing ---------------------------------------------------------------------------------
@command("push", "check a model folder, then upload it to the Hugging Face Hub as one commit")
@with_arguments(lambda p: (
    p.add_argument("folder", help="model folder written by zoo.save_pretrained or zoo train"),
    p.add_argument("--repo", required=True, metavar="ORG/NAME", help="Hub model repo (created if missing)"),
    p.add_argument("--revision", metavar="BRANCH", help="branch to commit to (default main; created if missing)"),
    p.add_argument("--private", action="store_true", help="create the repo private"),
    p.add_argument("--dry-run", action="store_true", help="check everything, upload nothing"),
))
def cmd_push(args) -> None:
    from zoo.publish import push_folder

    result = push_folder(args.folder, args.repo, revision=args.revision, private=args.private,
                         dry_run=args.dry_run)
    check = result.check
    print(f"checked {check.folder}: {check.name} ({check.architecture}, {check.parameters:,} parameters); "
          f"config builds, {check.tensors} tensors load strictly, card metadata complete")
    for name, sha in check.files.items():
        print(f"  {name:<18} sha256 {sha}")
    for note in check.notes:
        print(f"note: {note}")
    if result.commit is None:
        print(f"dry run: nothing uploaded to {result.repo_id}; after the upload the entry's revision "
              f"is the new commit:")
    else:
        print(f"pushed {check.name} to {result.repo_id}: commit {result.commit}")
        print(result.commit_url)
        print("registry entry, revision pinned to that commit:")
    print(result.entry_source())


@command("new-plugin", "write an installable architecture plugin package to start from")
@with_arguments(lambda p: (
    p.add_argument("name", help="architecture name, snake_case (e.g. lif_s4d)"),
    p.add_argument("--dir", default=".", help="where to create spikezoo-NAME/ (default: here)"),
))
def cmd_new_plugin(args) -> None:
    from zoo.template import new_plugin

    folder = new_plugin(args.name, args.dir)
    print(f"wrote {folder}")
    print(f"next: pip install -e {folder} && zoo plugins && pytest {folder}")


# ---- profile: the profiler plugin's command -------------------------------------------------
import zoo_profiler.cli  # noqa: E402,F401  (registers `zoo profile` in COMMANDS)


@command("results", "evaluate every bundled model and print a markdown table with costs and energy")
@with_arguments(lambda p: (
    p.add_argument("names", nargs="*", help="models (default: every bundled model)"),
    p.add_argument("--dataset", help="only the bundled models of this data set (e.g. sfmnist)"),
    p.add_argument("--data", metavar="DIR", help="folder with the data set's files (default: its usual place)"),
    p.add_argument("--limit", type=int, help="only the first N test examples (default: the full test set)"),
    p.add_argument("--readme", metavar="FILE", help="also write the table into FILE between its results markers"),
    p.add_argument("--json", action="store_true"),
))
def cmd_results(args) -> None:
    from zoo.train import replace_results_block, results, results_markdown

    rows = results(args.names or None, dataset=args.dataset, limit=args.limit, data_dir=args.data)
    if args.json:
        return print_json(rows)
    table = results_markdown(rows)
    print(table)
    if args.readme:
        replace_results_block(args.readme, table)


# ---- entry point --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description="spikezoo: spiking state space model zoo")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help, add, _) in COMMANDS.items():
        add(sub.add_parser(name, help=help, description=help))
    return parser


def main(argv: list[str] | None = None) -> int:
    # huggingface_hub logs every retry when the Hub cannot be reached; the contract is one error line
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        COMMANDS[args.command][2](args)
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the CLI's contract: one line, no traceback
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"zoo: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
