"""`zoo profile NAME`: the terminal table, and optionally JSON and a PNG plot.

Imported by zoo/cli.py to add the subcommand; it imports nothing heavy until the command runs.
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any

from zoo.cli import command, console, with_arguments


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """["d_model=64", "bidirectional=true"] -> {"d_model": 64, "bidirectional": True}.

    Values are read as JSON when they parse (numbers, true/false, null), else kept as strings.
    Raises ValueError for an item without '='.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            overrides[key] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key] = text
    return overrides


@command("profile", "count MACs, ACs, FLOPs and spikes of a model and estimate its energy per hardware")
@with_arguments(lambda p: (
    p.add_argument("name", nargs="?", help="pretrained model or architecture (built with random weights if none exist)"),
    p.add_argument("--hardware", default=None, help="comma-separated profiles, e.g. loihi,h100,45nm-fp32 "
                                                     "(default: all registered)"),
    p.add_argument("--json", metavar="FILE", help="write the report as JSON ('-' prints it instead of the table)"),
    p.add_argument("--plot", metavar="FILE.png", help="write a PNG: firing rate per layer, energy per hardware"),
    p.add_argument("--length", type=int, default=None, help="sequence length of the example input "
                                                             "(default: the config's seq_len)"),
    p.add_argument("--batch", type=int, default=1, help="batch size of the example input"),
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for the model built from NAME (repeatable), e.g. --set d_model=64"),
    p.add_argument("--depth", type=int, default=3, help="deepest module level shown in the table"),
    p.add_argument("--device", default="cpu", help="device to run on, e.g. cuda (NVML energy is measured there)"),
    p.add_argument("--list-hardware", action="store_true", help="list the hardware profiles and exit"),
))
def cmd_profile(args) -> None:
    import zoo_profiler

    if args.list_hardware:
        rows = {name: hw.to_dict() for name, hw in zoo_profiler.registered_hardware().items()}
        if args.json == "-":
            return print(json.dumps(rows, indent=2))
        for name, hw in rows.items():
            console().print(f"[bold]{name}[/bold] ({hw['kind']}{', lower bound' if hw['lower_bound'] else ''}): "
                            f"{hw['description']}")
            for key, c in hw["constants"].items():
                console().print(f"  {key} = {c['value']} {c['unit']}  [dim]{c['source']}[/dim]")
        return None
    if not args.name:
        raise ValueError("name a model or architecture to profile (see `zoo list`)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", zoo_profiler.RandomWeightsWarning)
        report = zoo_profiler.profile(args.name, hardware=args.hardware, length=args.length, batch=args.batch,
                                      overrides=parse_overrides(args.overrides), device=args.device)
    for w in caught:
        print(f"zoo: warning: {w.message}", file=sys.stderr)
    if args.json and args.json != "-":
        report.to_json(args.json)
    if args.plot:
        report.plot(args.plot)
    if args.json == "-":
        print(report.to_json())
    else:
        report.print(console(), max_depth=args.depth)
        for path in (args.json, args.plot):
            if path:
                console().print(f"wrote {path}")
